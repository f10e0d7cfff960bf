import { isFinal, type Status } from "../../core/status.js";
import type { StateStore } from "../../ports/backend.js";
import type { HistoryView, InvocationFilter, InvocationRecord, LogLine } from "../../ports/records.js";
import type { MemoryStore } from "./memory-store.js";

export class MemoryState implements StateStore {
  readonly #store: MemoryStore;
  constructor(store: MemoryStore) {
    this.#store = store;
  }

  async get(id: string): Promise<InvocationRecord | null> {
    const record = this.#store.invocations.get(id);
    return record ? { ...record } : null;
  }

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    return [...new Set(ids)].filter((id) => {
      const record = this.#store.invocations.get(id);
      return record !== undefined && isFinal(record.status);
    });
  }

  async list(filter: InvocationFilter): Promise<InvocationRecord[]> {
    const out: InvocationRecord[] = [];
    for (const record of this.#store.invocations.values()) {
      if (filter.statuses && !filter.statuses.includes(record.status)) continue;
      if (filter.taskId !== undefined && record.taskId !== filter.taskId) continue;
      if (filter.owner !== undefined && record.owner !== filter.owner) continue;
      if (filter.updatedBefore !== undefined && record.updatedAt > filter.updatedBefore) continue;
      out.push({ ...record });
      if (filter.limit !== undefined && out.length >= filter.limit) break;
    }
    return out;
  }

  async history(id: string): Promise<HistoryView[]> {
    return (this.#store.history.get(id) ?? []).map((entry) => {
      const runner = entry.runnerId ? this.#store.runners.get(entry.runnerId) : undefined;
      return { ...entry, hostname: runner?.hostname ?? null, pid: runner?.pid ?? null };
    });
  }

  async appendLogs(lines: readonly LogLine[]): Promise<number> {
    let stored = 0;
    for (const line of lines) {
      const record = this.#store.invocations.get(line.invocationId);
      if (!record || record.attempt !== line.attempt || record.owner !== line.runnerId) continue;
      let list = this.#store.logs.get(line.invocationId);
      if (!list) this.#store.logs.set(line.invocationId, (list = []));
      list.push(line);
      stored++;
    }
    return stored;
  }

  async logs(id: string): Promise<LogLine[]> {
    return [...(this.#store.logs.get(id) ?? [])];
  }

  async counts(): Promise<Partial<Record<Status, number>>> {
    const counts: Partial<Record<Status, number>> = {};
    for (const [status, count] of this.#store.counts) if (count > 0) counts[status] = count;
    return counts;
  }

  async purge(): Promise<void> {
    this.#store.clear();
  }
}
