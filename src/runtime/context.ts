import { AsyncLocalStorage } from "node:async_hooks";
import type { LogLevel } from "../ports/records.js";

/** What a running task can learn about itself (through app.logger, app.current()). */
export interface TaskContext {
  readonly invocationId: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly runnerId: string;
  /** Aborted when the invocation was taken from this runner (stop, or declared dead). */
  readonly signal: AbortSignal;
  /** Store a log line for this invocation (fenced: dropped once the attempt is no longer ours). Call it as a method. */
  readonly log: (level: LogLevel, message: string) => void;
}

export const taskContext = new AsyncLocalStorage<TaskContext>();
