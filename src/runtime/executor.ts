import type { ClaimedInvocation } from "../ports/records.js";
import type { TaskContext } from "./context.js";

/** How a task ended on an executor: its serialized result, or the error it threw. */
export type Outcome = { readonly ok: true; readonly result: string } | { readonly ok: false; readonly error: unknown };

/** Told how a task ended. It must not throw. */
export type Done = (outcome: Outcome) => void;

/**
 * Where a runner's tasks actually execute. The runner owns claims, statuses and fencing; an
 * executor only turns a claimed invocation into an outcome.
 */
export interface Executor {
  readonly kind: string;
  /** How many tasks it runs at once. */
  readonly capacity: number;
  start(): Promise<void>;
  /**
   * Run one invocation and tell `done` its outcome, exactly once and never before run() returns.
   * A callback rather than a promise: this is once per invocation on a worker's hottest path, and
   * on Node 20 every promise also runs the task context's promise hooks (a drain of no-ops made
   * three promises per invocation through a promise here, two through the callback).
   */
  run(invocation: ClaimedInvocation, context: TaskContext, done: Done): void;
  stop(): Promise<void>;
}
