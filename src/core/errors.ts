import type { Status } from "./status.js";

/** Base of every error nenc raises itself, so callers can tell ours from a task's. */
export class NencError extends Error {
  override name = "NencError";
}

export class InvalidTransitionError extends NencError {
  override name = "InvalidTransitionError";
  constructor(
    readonly invocationId: string,
    readonly from: Status,
    readonly to: Status,
  ) {
    super(`invocation ${invocationId}: the state machine has no transition ${from} -> ${to}`);
  }
}

export class OwnershipError extends NencError {
  override name = "OwnershipError";
  constructor(
    readonly invocationId: string,
    readonly from: Status,
    readonly to: Status,
    readonly owner: string | null,
    readonly actor: string | null,
  ) {
    super(`invocation ${invocationId}: ${from} -> ${to} is for its owner ${owner ?? "(none)"} only, not ${actor ?? "a client"}`);
  }
}

/** A compare-and-set lost: somebody else changed the invocation first (or fenced us out). */
export class StaleAttemptError extends NencError {
  override name = "StaleAttemptError";
  constructor(
    readonly invocationId: string,
    readonly attempt: number,
  ) {
    super(`invocation ${invocationId}: attempt ${attempt} is no longer current; the write was refused`);
  }
}

/** Throw it from a task to ask for another attempt; always retriable, within `maxRetries`. */
export class RetryError extends NencError {
  override name = "RetryError";
}

export class ConfigError extends NencError {
  override name = "ConfigError";
  constructor(
    readonly key: string,
    readonly source: string,
    detail: string,
  ) {
    super(`config ${key} (from ${source}): ${detail}`);
  }
}

export class SerializationError extends NencError {
  override name = "SerializationError";
}

export class UnknownTaskError extends NencError {
  override name = "UnknownTaskError";
  constructor(readonly taskId: string) {
    super(`no task named "${taskId}" is registered in this app`);
  }
}

export class InvocationNotFoundError extends NencError {
  override name = "InvocationNotFoundError";
  constructor(readonly invocationId: string) {
    super(`no invocation ${invocationId} in this app`);
  }
}

/** A child process of the process runner died while running the task (OOM, SIGKILL, crash). */
export class ProcessCrashError extends NencError {
  override name = "ProcessCrashError";
}

/** How a task's failure is stored and shown: enough to rebuild a useful Error elsewhere. */
export interface ErrorRecord {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** The error a failed invocation rejects with in the process that asked for the result. */
export class TaskFailedError extends NencError {
  override name = "TaskFailedError";
  constructor(
    readonly invocationId: string,
    readonly taskId: string,
    readonly failure: ErrorRecord,
  ) {
    super(`${taskId} (${invocationId}) failed: ${failure.name}: ${failure.message}`);
  }
}

/** What was thrown, as an Error (a thrown string or object becomes one with its text). */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}
