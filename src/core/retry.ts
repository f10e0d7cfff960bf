import { RetryError } from "./errors.js";

export interface RetryPolicy {
  /** Further attempts after the first failure; 0 means a failure is final. */
  readonly maxRetries: number;
  /** Error classes (matched by `instanceof` or by name) that may be retried; RetryError always is. */
  readonly retryFor: readonly (ErrorClass | string)[];
  readonly backoffMs: number;
  readonly backoffMaxMs: number;
  /** 0..1: the share of each delay that is drawn at random, so retries of a batch spread out. */
  readonly jitter: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ErrorClass = abstract new (...args: any[]) => Error;

export function isRetriable(policy: RetryPolicy, error: unknown, retriesSoFar: number): boolean {
  if (retriesSoFar >= policy.maxRetries) return false;
  if (error instanceof RetryError) return true;
  return policy.retryFor.some((kind) => (typeof kind === "string" ? error instanceof Error && error.name === kind : error instanceof kind));
}

/** Exponential backoff with jitter: base * 2^retry, capped, with `jitter` of it random. */
export function retryDelayMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const full = Math.min(policy.backoffMaxMs, policy.backoffMs * 2 ** retry);
  return Math.round(full * (1 - policy.jitter) + full * policy.jitter * random());
}
