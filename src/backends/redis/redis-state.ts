import { STATUSES, type Status } from "../../core/status.js";
import type { StateStore } from "../../ports/backend.js";
import type { HistoryView, InvocationFilter, InvocationRecord, LogLine } from "../../ports/records.js";
import type { RedisClient } from "./redis-client.js";
import { indexOf } from "./redis-scripts.js";
import { decodeHistory, decodeInvocation, decodeLogLine, encodeLogLine, INVOCATION_FIELDS } from "./redis-records.js";

/** Ids read per round trip when listing. */
const PAGE = 500;

/**
 * Reads over the invocation hashes, the status indexes and the counts hash, plus the fenced log
 * append. A listing goes index by index; within the queue oldest readyAt first, elsewhere oldest
 * first.
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

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return JSON.parse((await this.#client.run("nencFinalAmong", "", [JSON.stringify(ids)])) as string) as string[];
  }

  async list(filter: InvocationFilter): Promise<InvocationRecord[]> {
    const limit = filter.limit ?? Number.POSITIVE_INFINITY;
    const out: InvocationRecord[] = [];
    const statuses = new Set<Status>(filter.statuses ?? STATUSES);
    const seen = new Set<string>();
    for (const group of new Set([...statuses].map(indexOf))) {
      const ids = new IndexCursor(this.#client, group);
      while (out.length < limit) {
        const page = (await ids.next(PAGE)).filter((id) => !seen.has(id));
        if (page.length === 0) break;
        const rows = await this.#client.pipeline((p) =>
          page.forEach((id) => p.hmget(this.#client.keys.invocation(id), ...INVOCATION_FIELDS)),
        );
        page.forEach((id, i) => {
          seen.add(id);
          const record = decodeInvocation(id, rows[i] as (string | null)[]);
          if (record && out.length < limit && statuses.has(record.status) && matches(record, filter)) out.push(record);
        });
      }
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
    const batch: string[] = [];
    for (const line of lines) batch.push(line.invocationId, String(line.attempt), line.runnerId, encodeLogLine(line));
    return (await this.#client.run("nencAppendLogs", this.#client.token(), [JSON.stringify(batch)])) as number;
  }

  async logs(id: string): Promise<LogLine[]> {
    const lines = await this.#client.command((redis) => redis.lrange(this.#client.keys.logs(id), 0, -1));
    return lines.map(decodeLogLine);
  }

  async counts(): Promise<Partial<Record<Status, number>>> {
    const stored = await this.#client.command((redis) => redis.hgetall(this.#client.keys.counts));
    const counts: Partial<Record<Status, number>> = {};
    for (const status of STATUSES) {
      const n = Number(stored[status] ?? 0);
      if (n > 0) counts[status] = n;
    }
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

/**
 * Walks one index a page at a time: the queue by rank (its scores, readyAt, repeat), the others by
 * creation sequence (unique), so that a move between pages skips nothing there.
 */
class IndexCursor {
  readonly #client: RedisClient;
  readonly #key: string;
  readonly #queue: boolean;
  #after = "-inf";
  #rank = 0;
  #done = false;

  constructor(client: RedisClient, group: string) {
    this.#client = client;
    this.#key = client.keys.index(group);
    this.#queue = this.#key === client.keys.ready;
  }

  async next(count: number): Promise<string[]> {
    if (this.#done) return [];
    const key = this.#key;
    const flat = await this.#client.command((redis) =>
      this.#queue
        ? redis.zrange(key, this.#rank, this.#rank + count - 1)
        : redis.zrangebyscore(key, this.#after, "+inf", "WITHSCORES", "LIMIT", 0, count),
    );
    const step = this.#queue ? 1 : 2;
    const ids: string[] = [];
    for (let i = 0; i < flat.length; i += step) ids.push(this.#queue ? (flat[i] as string).slice(16) : (flat[i] as string));
    if (this.#queue) this.#rank += ids.length;
    else if (ids.length) this.#after = `(${flat[flat.length - 1]}`;
    if (ids.length < count) this.#done = true;
    return ids;
  }
}
