export { Nenc, type NencOptions, type BackendOption } from "./runtime/app.js";
export { Task, type TaskOptions } from "./runtime/task.js";
export { Invocation, type ResultOptions } from "./runtime/invocation.js";
export { Worker, type WorkerOptions } from "./runtime/worker.js";
export type { TaskContext } from "./runtime/context.js";
export type { Logger } from "./runtime/logger.js";
export {
  NencError,
  RetryError,
  TaskFailedError,
  ConfigError,
  SerializationError,
  InvalidTransitionError,
  OwnershipError,
  UnknownTaskError,
  InvocationNotFoundError,
  ProcessCrashError,
  type ErrorRecord,
} from "./core/errors.js";
export { STATUSES, STATUS_TABLE, type Status } from "./core/status.js";
export { ManualClock, type Clock } from "./core/clock.js";
export type { Backend, Orchestrator, Broker, StateStore, Capabilities } from "./ports/backend.js";
export type { HistoryView, InvocationRecord, LogLine, RunnerRecord } from "./ports/records.js";
