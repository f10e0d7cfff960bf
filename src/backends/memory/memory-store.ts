import { WakeUps } from "../../ports/wake-ups.js";
import type { Status } from "../../core/status.js";
import type { HistoryEntry, InvocationRecord, LogLine, RunnerRecord } from "../../ports/records.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The data of one memory backend, shared by its orchestrator, broker and state store. */
export class MemoryStore {
  readonly invocations = new Map<string, Mutable<InvocationRecord>>();
  /** Claimable invocation ids in the order they became claimable. */
  readonly ready = new Set<string>();
  readonly history = new Map<string, HistoryEntry[]>();
  readonly logs = new Map<string, LogLine[]>();
  readonly runners = new Map<string, Mutable<RunnerRecord>>();
  readonly leases = new Map<string, { holder: string; expiresAt: number }>();
  /** Invocations per status, kept as statuses change so counting never scans. */
  readonly counts = new Map<Status, number>();
  readonly #wakeUps = new WakeUps();

  addHistory(id: string, status: Status, at: number, attempt: number, runnerId: string | null): void {
    let entries = this.history.get(id);
    if (!entries) this.history.set(id, (entries = []));
    entries.push({ status, at, attempt, runnerId });
  }

  /** Every status change goes through here, to keep `counts` right. */
  setStatus(record: Mutable<InvocationRecord>, to: Status): void {
    this.counts.set(record.status, (this.counts.get(record.status) ?? 0) - 1);
    this.counts.set(to, (this.counts.get(to) ?? 0) + 1);
    record.status = to;
  }

  subscribe(listener: () => void): () => void {
    return this.#wakeUps.add(listener);
  }

  /** Wake listeners once per tick, after the current batch of writes. */
  changed(): void {
    this.#wakeUps.wake();
  }

  clear(): void {
    this.invocations.clear();
    this.ready.clear();
    this.history.clear();
    this.logs.clear();
    this.runners.clear();
    this.leases.clear();
    this.counts.clear();
  }
}
