import type { Status } from "../core/status.js";

/** An invocation as every backend stores it. Arguments, result and error are serialized text. */
export interface InvocationRecord {
  readonly id: string;
  readonly taskId: string;
  readonly callId: string;
  readonly args: string;
  readonly status: Status;
  /** Fencing token: bumped by every claim; a write carrying an older attempt is refused. */
  readonly attempt: number;
  readonly owner: string | null;
  /** Retries used so far. */
  readonly retries: number;
  /** When a claimable invocation may be claimed (epoch ms); null while not claimable. */
  readonly readyAt: number | null;
  readonly parentId: string | null;
  readonly result: string | null;
  readonly error: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What a client hands the backend to create an invocation; it starts REGISTERED and claimable. */
export interface NewInvocation {
  readonly id: string;
  readonly taskId: string;
  readonly callId: string;
  readonly args: string;
  readonly parentId: string | null;
  readonly createdAt: number;
  readonly readyAt: number;
}

/** What a claim hands the runner: enough to run it and to write its next transitions. */
export interface ClaimedInvocation {
  readonly id: string;
  readonly taskId: string;
  readonly args: string;
  readonly attempt: number;
  readonly retries: number;
  readonly parentId: string | null;
}

export interface HistoryEntry {
  readonly status: Status;
  readonly at: number;
  readonly attempt: number;
  readonly runnerId: string | null;
}

/** History as users read it: each transition with the runner's host and process. */
export interface HistoryView extends HistoryEntry {
  readonly hostname: string | null;
  readonly pid: number | null;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogLine {
  readonly invocationId: string;
  readonly attempt: number;
  readonly runnerId: string;
  readonly at: number;
  readonly level: LogLevel;
  readonly message: string;
}

export interface RunnerInfo {
  readonly id: string;
  readonly kind: string;
  /** Same value on one host and kernel and PID namespace: there a pid can be checked directly. */
  readonly hostId: string;
  readonly hostname: string;
  readonly pid: number;
  /** The process's start time as the kernel tells it, so a reused pid is not taken for the runner. */
  readonly pidStart: string | null;
  readonly startedAt: number;
}

export interface RunnerRecord extends RunnerInfo {
  readonly heartbeatAt: number;
  /** Set when it stopped gracefully. */
  readonly stoppedAt: number | null;
  /** Set when recovery declared it dead; its heartbeats are refused from then on. */
  readonly deadAt: number | null;
}

export interface InvocationFilter {
  readonly statuses?: readonly Status[];
  readonly taskId?: string;
  readonly owner?: string;
  /** Only invocations last changed at or before this time. */
  readonly updatedBefore?: number;
  readonly limit?: number;
}
