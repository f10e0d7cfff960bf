import type { TransitionRequest } from "../../core/transition.js";
import type { Orchestrator } from "../../ports/backend.js";
import type { NewInvocation, RunnerInfo, RunnerRecord } from "../../ports/records.js";
import { RedisUnreachableError, type RedisClient } from "./redis-client.js";
import { decodeRunner, encodeBatch, encodeRunner } from "./redis-records.js";

/** How long after a server (re)start client names are not trusted: every client needs time to reconnect. */
const RECONNECT_GRACE_SECONDS = 3;
/** Outcomes of in-doubt requests kept for their retries; beyond this the oldest are dropped. */
const MAX_SETTLED = 100_000;

const nullable = (value: string | null | undefined): string => (value === null || value === undefined ? "" : `=${value}`);

/**
 * Status writes, runners and leases, each one Lua script. A transition batch whose reply was lost
 * with the connection is "in doubt": before the next batch, its stored reply (if it ran) is read
 * back, and the caller's retry of one of its requests gets that outcome instead of a second
 * compare-and-set that would fail against the first one's own effect.
 */
export class RedisOrchestrator implements Orchestrator {
  readonly #client: RedisClient;
  #inDoubt: { token: string; requests: readonly TransitionRequest[] }[] = [];
  readonly #settled = new Map<string, boolean>();
  #settling: Promise<void> | undefined;

  constructor(client: RedisClient) {
    this.#client = client;
  }

  async register(invocations: readonly NewInvocation[]): Promise<void> {
    if (invocations.length === 0) return;
    const batch = encodeBatch(
      7,
      invocations.map((inv) => [
        inv.id,
        inv.taskId,
        inv.callId,
        inv.args,
        nullable(inv.parentId),
        String(inv.createdAt),
        String(inv.readyAt),
      ]),
    );
    await this.#client.run("nencRegister", this.#client.token(), [batch]);
  }

  async transition(requests: readonly TransitionRequest[]): Promise<boolean[]> {
    if (requests.length === 0) return [];
    if (this.#inDoubt.length) await (this.#settling ??= this.#settle().finally(() => (this.#settling = undefined)));
    const answers: (boolean | undefined)[] = requests.map((r) => this.#takeSettled(r));
    const fresh = requests.filter((_, i) => answers[i] === undefined);
    if (fresh.length === 0) return answers as boolean[];
    const token = this.#client.token();
    let reply: string;
    try {
      reply = (await this.#client.run("nencTransition", token, [encodeTransitions(fresh)])) as string;
    } catch (error) {
      if (error instanceof RedisUnreachableError) this.#inDoubt.push({ token, requests: fresh });
      throw error;
    }
    let next = 0;
    return answers.map((answer) => answer ?? reply[next++] === "1");
  }

  #takeSettled(request: TransitionRequest): boolean | undefined {
    if (this.#settled.size === 0) return undefined;
    const key = JSON.stringify(request);
    const applied = this.#settled.get(key);
    this.#settled.delete(key);
    return applied;
  }

  /** Learn what the in-doubt batches did: a stored reply means it ran, none that it never will. */
  async #settle(): Promise<void> {
    const batches = this.#inDoubt;
    this.#inDoubt = [];
    const keys = batches.map((b) => this.#client.keys.done(b.token));
    let replies: (string | null)[];
    try {
      replies = await this.#client.command((redis) => redis.mget(...keys));
    } catch (error) {
      this.#inDoubt.unshift(...batches);
      throw error;
    }
    batches.forEach((batch, i) => {
      const reply = replies[i];
      if (reply === null || reply === undefined) return;
      batch.requests.forEach((request, j) => this.#settled.set(JSON.stringify(request), reply[j] === "1"));
    });
    for (const key of this.#settled.keys()) {
      if (this.#settled.size <= MAX_SETTLED) break;
      this.#settled.delete(key);
    }
    await this.#client.command((redis) => redis.unlink(...keys));
  }

  async registerRunner(info: RunnerInfo, now: number): Promise<void> {
    // Named first: once the runner is visible, its connection is too.
    await this.#client.speakFor(info.id);
    await this.#client.run("nencRegisterRunner", "", [info.id, ...encodeRunner(info, now)]);
  }

  async heartbeat(runnerId: string, now: number): Promise<boolean> {
    await this.#client.speakFor(runnerId);
    const alive = (await this.#client.run("nencHeartbeat", "", [runnerId, String(now)])) === 1;
    if (!alive) await this.#client.stopSpeakingFor([runnerId]);
    return alive;
  }

  async retireRunners(runnerIds: readonly string[], how: "stopped" | "dead", now: number): Promise<string[]> {
    if (runnerIds.length === 0) return [];
    const field = how === "dead" ? "deadAt" : "stoppedAt";
    const retired = (await this.#client.run("nencRetireRunners", "", [field, String(now), ...runnerIds])) as string[];
    await this.#client.stopSpeakingFor(runnerIds);
    return retired;
  }

  async runners(): Promise<RunnerRecord[]> {
    const { keys } = this.#client;
    const ids = await this.#client.command((redis) => redis.smembers(keys.runners));
    if (ids.length === 0) return [];
    const hashes = await this.#client.pipeline((p) => ids.forEach((id) => p.hgetall(keys.runner(id))));
    return ids.flatMap((id, i) => decodeRunner(id, hashes[i] as Record<string, string>) ?? []);
  }

  /**
   * The runners whose connection is open now, from the client names the server lists; null when
   * the server cannot tell (it was just restarted and clients are still reconnecting, or the
   * CLIENT command is not allowed).
   */
  async connectedRunners(): Promise<Set<string> | null> {
    const { keys } = this.#client;
    let info: string;
    let list: string;
    try {
      [info, list] = (await this.#client.pipeline((p) => p.info("server").client("LIST", "TYPE", "NORMAL"))) as [string, string];
    } catch (error) {
      if (error instanceof RedisUnreachableError) throw error;
      return null;
    }
    const uptime = Number(/uptime_in_seconds:(\d+)/.exec(info)?.[1] ?? 0);
    if (uptime < RECONNECT_GRACE_SECONDS) return null;
    const connected = new Set<string>();
    for (const match of list.matchAll(/ name=(\S+)/g)) {
      for (const id of keys.runnersOfConnection(match[1] ?? "")) connected.add(id);
    }
    return connected;
  }

  async acquireLease(name: string, holder: string, now: number, ttlMs: number, replacing?: string): Promise<boolean> {
    const args = [name, holder, String(now), String(ttlMs), nullable(replacing)];
    return (await this.#client.run("nencAcquireLease", "", args)) === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#client.run("nencReleaseLease", "", [name, holder]);
  }
}

/** The transition script's batch: 13 strings per request, by columns (see encodeBatch). */
function encodeTransitions(requests: readonly TransitionRequest[]): string {
  return encodeBatch(
    13,
    requests.map((r) => [
      r.id,
      r.expect.status,
      String(r.expect.attempt),
      r.expect.owner === undefined ? "*" : nullable(r.expect.owner),
      r.to,
      nullable(r.owner),
      String(r.attempt),
      r.readyAt === null ? "" : String(r.readyAt),
      String(r.at),
      nullable(r.by),
      nullable(r.result),
      nullable(r.error),
      r.retries === undefined ? "" : String(r.retries),
    ]),
  );
}
