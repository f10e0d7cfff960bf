import type { ClaimedInvocation } from "../ports/records.js";
import type { TaskContext } from "./context.js";

/** How a task ended on an executor: its serialized result, or the error it threw. */
export type Outcome = { readonly ok: true; readonly result: string } | { readonly ok: false; readonly error: unknown };

/**
 * Where a runner's tasks actually execute. The runner owns claims, statuses and fencing; an
 * executor only turns a claimed invocation into an outcome.
 */
export interface Executor {
  readonly kind: string;
  /** How many tasks it runs at once. */
  readonly capacity: number;
  start(): Promise<void>;
  run(invocation: ClaimedInvocation, context: TaskContext): Promise<Outcome>;
  stop(): Promise<void>;
}
