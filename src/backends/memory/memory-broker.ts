import { CLAIMED_STATUS, STARTED_STATUS } from "../../core/status.js";
import type { Broker, ClaimOptions } from "../../ports/backend.js";
import type { ClaimedInvocation } from "../../ports/records.js";
import type { MemoryStore } from "./memory-store.js";

export class MemoryBroker implements Broker {
  readonly #store: MemoryStore;
  constructor(store: MemoryStore) {
    this.#store = store;
  }

  async claim(runnerId: string, max: number, now: number, options: ClaimOptions = {}): Promise<ClaimedInvocation[]> {
    const store = this.#store;
    const claimed: ClaimedInvocation[] = [];
    const runner = store.runners.get(runnerId);
    if (!runner || runner.deadAt !== null || runner.stoppedAt !== null) return claimed;
    for (const id of store.ready) {
      if (claimed.length >= max) break;
      const record = store.invocations.get(id);
      if (!record || record.readyAt === null || record.readyAt > now) continue;
      store.ready.delete(id);
      record.owner = runnerId;
      record.attempt += 1;
      record.readyAt = null;
      record.updatedAt = now;
      store.addHistory(id, CLAIMED_STATUS, now, record.attempt, runnerId);
      if (options.start) store.addHistory(id, STARTED_STATUS, now, record.attempt, runnerId);
      store.setStatus(record, options.start ? STARTED_STATUS : CLAIMED_STATUS);
      claimed.push({
        id,
        taskId: record.taskId,
        args: record.args,
        attempt: record.attempt,
        retries: record.retries,
        parentId: record.parentId,
      });
    }
    if (claimed.length > 0) store.changed();
    return claimed;
  }

  async queueLength(now: number): Promise<number> {
    let count = 0;
    for (const id of this.#store.ready) {
      const readyAt = this.#store.invocations.get(id)?.readyAt;
      if (readyAt !== undefined && readyAt !== null && readyAt <= now) count++;
    }
    return count;
  }

  subscribe(listener: () => void): () => void {
    return this.#store.subscribe(listener);
  }
}
