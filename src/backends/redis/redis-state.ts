import { STATUSES, type Status } from "../../core/status.js";
import type { StateStore } from "../../ports/backend.js";
import type { HistoryView, InvocationFilter, InvocationRecord, LogLine } from "../../ports/records.js";
import type { RedisClient } from "./redis-client.js";
import { decodeHistory, decodeInvocation, decodeLogLine, encodeLogLine, INVOCATION_FIELDS } from "./redis-records.js";

/** Ids read per round trip when listing. */
const PAGE = 500;

/**
 * Reads over the invocation hashes and their per-status sorted sets (scored by creation order, so
 * listings come oldest first, as in every backend), plus the fenced log append.
 */
export class RedisState implements StateStore {
  readonly #client: RedisClient;

  constructor(client: RedisClient) {
    this.#client = client;
  }

  async get(id: string): Promise<InvocationRecord | null> {
    const values = await this.#client.command((redis) => redis.hmget(this.#client.keys.invocation(id), ...INVOCATION_FIELDS));
    return decodeInvocation(id, values);
  }

  async list(filter: InvocationFilter): Promise<InvocationRecord[]> {
    const limit = filter.limit ?? Number.POSITIVE_INFINITY;
    const out: InvocationRecord[] = [];
    if (limit <= 0) return out;
    const ids = new StatusCursor(this.#client, filter.statuses ?? STATUSES);
    const seen = new Set<string>();
    while (out.length < limit) {
      const page = (await ids.next(PAGE)).filter((id) => !seen.has(id));
      if (page.length === 0) break;
      const rows = await this.#client.pipeline((p) => page.forEach((id) => p.hmget(this.#client.keys.invocation(id), ...INVOCATION_FIELDS)));
      page.forEach((id, i) => {
        seen.add(id);
        const record = decodeInvocation(id, rows[i] as (string | null)[]);
        if (record && out.length < limit && matches(record, filter)) out.push(record);
      });
    }
    return out;
  }

  async history(id: string): Promise<HistoryView[]> {
    const { keys } = this.#client;
    const entries = decodeHistory(await this.#client.command((redis) => redis.hgetall(keys.invocation(id))));
    const runnerIds = [...new Set(entries.flatMap((e) => (e.runnerId ? [e.runnerId] : [])))];
    const found = runnerIds.length
      ? await this.#client.pipeline((p) => runnerIds.forEach((r) => p.hmget(keys.runner(r), "hostname", "pid")))
      : [];
    const runners = new Map(runnerIds.map((r, i) => [r, found[i] as (string | null)[]]));
    return entries.map((entry) => {
      const [hostname = null, pid = null] = (entry.runnerId && runners.get(entry.runnerId)) || [];
      return { ...entry, hostname, pid: pid === null ? null : Number(pid) };
    });
  }

  async appendLogs(lines: readonly LogLine[]): Promise<number> {
    if (lines.length === 0) return 0;
    const args = lines.flatMap((line) => [line.invocationId, String(line.attempt), line.runnerId, encodeLogLine(line)]);
    return (await this.#client.run("nencAppendLogs", this.#client.token(), args)) as number;
  }

  async logs(id: string): Promise<LogLine[]> {
    const lines = await this.#client.command((redis) => redis.lrange(this.#client.keys.logs(id), 0, -1));
    return lines.map(decodeLogLine);
  }

  async counts(): Promise<Partial<Record<Status, number>>> {
    const { keys } = this.#client;
    const sizes = await this.#client.pipeline((p) => STATUSES.forEach((s) => p.zcard(keys.status(s))));
    const counts: Partial<Record<Status, number>> = {};
    STATUSES.forEach((status, i) => {
      const n = Number(sizes[i]);
      if (n > 0) counts[status] = n;
    });
    return counts;
  }

  /** Every key under the app's prefix (SCAN + UNLINK), and only those. */
  async purge(): Promise<void> {
    const { keys } = this.#client;
    let cursor = "0";
    do {
      const [next, found] = await this.#client.command((redis) => redis.scan(cursor, "MATCH", keys.pattern, "COUNT", 1000));
      if (found.length) await this.#client.command((redis) => redis.unlink(...found));
      cursor = next;
    } while (cursor !== "0");
  }
}

function matches(record: InvocationRecord, filter: InvocationFilter): boolean {
  if (filter.taskId !== undefined && record.taskId !== filter.taskId) return false;
  if (filter.owner !== undefined && record.owner !== filter.owner) return false;
  if (filter.updatedBefore !== undefined && record.updatedAt > filter.updatedBefore) return false;
  return true;
}

interface SetCursor {
  readonly key: string;
  /** The score (creation sequence) to read after. */
  after: string;
  /** Ids read but not handed out yet, with their scores. */
  readonly buffer: [string, number][];
  done: boolean;
}

/** Walks several per-status sorted sets at once in creation order, a page at a time. */
class StatusCursor {
  readonly #client: RedisClient;
  readonly #sets: SetCursor[];

  constructor(client: RedisClient, statuses: readonly Status[]) {
    this.#client = client;
    this.#sets = [...new Set(statuses)].map((s) => ({ key: client.keys.status(s), after: "-inf", buffer: [], done: false }));
  }

  /** Up to `count` ids, oldest first across the sets. */
  async next(count: number): Promise<string[]> {
    const ids: string[] = [];
    while (ids.length < count) {
      await this.#fill(count);
      let best: SetCursor | undefined;
      for (const set of this.#sets) {
        const head = set.buffer[0];
        if (head && (!best || head[1] < (best.buffer[0] as [string, number])[1])) best = set;
      }
      if (!best) break;
      ids.push((best.buffer.shift() as [string, number])[0]);
    }
    return ids;
  }

  /** Read the next page of every set whose buffer ran dry, in one round trip; by score, so moves between pages skip nothing. */
  async #fill(count: number): Promise<void> {
    const dry = this.#sets.filter((s) => s.buffer.length === 0 && !s.done);
    if (dry.length === 0) return;
    const pages = await this.#client.pipeline((p) =>
      dry.forEach((s) => p.zrangebyscore(s.key, s.after, "+inf", "WITHSCORES", "LIMIT", 0, count)),
    );
    dry.forEach((set, i) => {
      const flat = pages[i] as string[];
      for (let j = 0; j + 1 < flat.length; j += 2) set.buffer.push([flat[j] as string, Number(flat[j + 1])]);
      const last = set.buffer[set.buffer.length - 1];
      if (last) set.after = `(${last[1]}`;
      if (flat.length / 2 < count) set.done = true;
    });
  }
}
