import { STATUS_TABLE } from "../../core/status.js";
import { expectationHolds, type TransitionRequest } from "../../core/transition.js";
import type { Orchestrator } from "../../ports/backend.js";
import type { NewInvocation, RunnerInfo, RunnerRecord } from "../../ports/records.js";
import type { MemoryStore } from "./memory-store.js";

export class MemoryOrchestrator implements Orchestrator {
  readonly #store: MemoryStore;
  constructor(store: MemoryStore) {
    this.#store = store;
  }

  async register(invocations: readonly NewInvocation[]): Promise<void> {
    const store = this.#store;
    for (const inv of invocations) {
      if (store.invocations.has(inv.id)) throw new Error(`invocation ${inv.id} already exists`);
    }
    for (const inv of invocations) {
      store.invocations.set(inv.id, {
        ...inv,
        status: "REGISTERED",
        attempt: 0,
        owner: null,
        retries: 0,
        result: null,
        error: null,
        updatedAt: inv.createdAt,
      });
      store.counts.set("REGISTERED", (store.counts.get("REGISTERED") ?? 0) + 1);
      store.ready.add(inv.id);
      store.addHistory(inv.id, "REGISTERED", inv.createdAt, 0, null);
    }
    store.changed();
  }

  async transition(requests: readonly TransitionRequest[]): Promise<boolean[]> {
    const store = this.#store;
    const applied = requests.map((request) => {
      const record = store.invocations.get(request.id);
      if (!record || !expectationHolds(record, request)) return false;
      store.setStatus(record, request.to);
      record.owner = request.owner;
      record.attempt = request.attempt;
      record.readyAt = request.readyAt;
      record.updatedAt = request.at;
      if (request.result !== undefined) record.result = request.result;
      if (request.error !== undefined) record.error = request.error;
      if (request.retries !== undefined) record.retries = request.retries;
      if (STATUS_TABLE[request.to].claimable) store.ready.add(request.id);
      else store.ready.delete(request.id);
      store.addHistory(request.id, request.to, request.at, request.attempt, request.by);
      return true;
    });
    store.changed();
    return applied;
  }

  async registerRunner(info: RunnerInfo, now: number): Promise<void> {
    this.#store.runners.set(info.id, { ...info, heartbeatAt: now, stoppedAt: null, deadAt: null });
  }

  async heartbeat(runnerId: string, now: number): Promise<boolean> {
    const runner = this.#store.runners.get(runnerId);
    if (!runner || runner.deadAt !== null || runner.stoppedAt !== null) return false;
    runner.heartbeatAt = Math.max(runner.heartbeatAt, now);
    return true;
  }

  async retireRunners(runnerIds: readonly string[], how: "stopped" | "dead", now: number): Promise<string[]> {
    const retired: string[] = [];
    for (const id of runnerIds) {
      const runner = this.#store.runners.get(id);
      if (!runner || runner.deadAt !== null || runner.stoppedAt !== null) continue;
      if (how === "dead") runner.deadAt = now;
      else runner.stoppedAt = now;
      retired.push(id);
    }
    return retired;
  }

  async runners(): Promise<RunnerRecord[]> {
    return [...this.#store.runners.values()].map((r) => ({ ...r }));
  }

  async acquireLease(name: string, holder: string, now: number, ttlMs: number, replacing?: string): Promise<boolean> {
    const lease = this.#store.leases.get(name);
    if (lease && lease.holder !== holder && lease.holder !== replacing && lease.expiresAt > now) return false;
    this.#store.leases.set(name, { holder, expiresAt: now + ttlMs });
    return true;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    if (this.#store.leases.get(name)?.holder === holder) this.#store.leases.delete(name);
  }
}
