import { InvocationNotFoundError, NencError, TaskFailedError, type ErrorRecord } from "../core/errors.js";
import { deserialize } from "../core/serializer.js";
import { isFinal, type Status } from "../core/status.js";
import type { HistoryView, InvocationRecord, LogLine } from "../ports/records.js";
import type { Nenc } from "./app.js";

export interface ResultOptions {
  /** Reject with a timeout error if the invocation is not final by then. */
  readonly timeoutMs?: number;
}

/** A handle on one invocation; cheap to make from an id in any process of the app. */
export class Invocation<Result = unknown> {
  readonly id: string;
  readonly #app: Nenc;

  constructor(app: Nenc, id: string) {
    this.#app = app;
    this.id = id;
  }

  async record(): Promise<InvocationRecord> {
    const backend = await this.#app.backend();
    const record = await backend.state.get(this.id);
    if (!record) throw new InvocationNotFoundError(this.id);
    return record;
  }

  async status(): Promise<Status> {
    return (await this.record()).status;
  }

  /** Every status it went through, oldest first, with the runner, host and pid that moved it. */
  async history(): Promise<HistoryView[]> {
    return (await this.#app.backend()).state.history(this.id);
  }

  async logs(): Promise<LogLine[]> {
    return (await this.#app.backend()).state.logs(this.id);
  }

  /** Waits until it is final: resolves with the result, or rejects with TaskFailedError. */
  async result(options: ResultOptions = {}): Promise<Result> {
    const record = await this.#app.waitUntilFinal(this.id, options.timeoutMs);
    return outcomeOf<Result>(record);
  }
}

export function outcomeOf<Result>(record: InvocationRecord): Result {
  if (record.status === "SUCCESS") return deserialize<Result>(record.result ?? "null");
  if (record.status === "FAILED") {
    const failure = record.error ? deserialize<ErrorRecord>(record.error) : { name: "Error", message: "(no error stored)" };
    throw new TaskFailedError(record.id, record.taskId, failure);
  }
  if (isFinal(record.status)) {
    throw new NencError(`${record.taskId} (${record.id}) ended ${record.status} without a result`);
  }
  throw new NencError(`${record.taskId} (${record.id}) is ${record.status}, not final yet`);
}
