import type { Status } from "../../core/status.js";
import type { HistoryEntry, InvocationRecord, LogLine, RunnerInfo, RunnerRecord } from "../../ports/records.js";

/**
 * How records are laid out in Redis (the scripts write them; see redis-scripts.ts). An invocation
 * is a hash: a null owner, readyAt or parentId is '', a null result or error is absent, and its
 * history is in fields h1..hn, each `status|at|attempt|runnerId`. Its logs are a list of JSON
 * lines; a runner is a hash whose null fields are absent.
 */

type Hash = Record<string, string>;

const numberOr = (value: string | undefined, fallback: number | null): number | null => (value === undefined ? fallback : Number(value));

/** The fields of an invocation's hash that make its record, in the order decodeInvocation reads them. */
export const INVOCATION_FIELDS = [
  "taskId",
  "callId",
  "args",
  "status",
  "attempt",
  "owner",
  "retries",
  "readyAt",
  "parentId",
  "result",
  "error",
  "createdAt",
  "updatedAt",
] as const;

/** A record from HMGET of INVOCATION_FIELDS; null when the invocation does not exist. */
export function decodeInvocation(id: string, values: readonly (string | null)[]): InvocationRecord | null {
  const [taskId, callId, args, status, attempt, owner, retries, readyAt, parentId, result, error, createdAt, updatedAt] = values;
  if (!status) return null;
  return {
    id,
    taskId: taskId ?? "",
    callId: callId ?? "",
    args: args ?? "",
    status: status as Status,
    attempt: Number(attempt),
    owner: owner || null,
    retries: Number(retries),
    readyAt: readyAt ? Number(readyAt) : null,
    parentId: parentId || null,
    result: result ?? null,
    error: error ?? null,
    createdAt: Number(createdAt),
    updatedAt: Number(updatedAt),
  };
}

/** The history entries of an invocation, oldest first, from HGETALL of its hash. */
export function decodeHistory(hash: Hash): HistoryEntry[] {
  const count = Number(hash["hn"] ?? 0);
  const entries: HistoryEntry[] = [];
  for (let i = 1; i <= count; i++) {
    const entry = hash[`h${i}`];
    if (entry !== undefined) entries.push(decodeHistoryEntry(entry));
  }
  return entries;
}

function decodeHistoryEntry(entry: string): HistoryEntry {
  const [status = "", at = "", attempt = ""] = entry.split("|", 3);
  const runnerId = entry.slice(status.length + at.length + attempt.length + 3);
  return { status: status as Status, at: Number(at), attempt: Number(attempt), runnerId: runnerId || null };
}

export function encodeLogLine(line: LogLine): string {
  return JSON.stringify(line);
}

export function decodeLogLine(text: string): LogLine {
  return JSON.parse(text) as LogLine;
}

/** Field/value pairs of a runner's hash when it registers. */
export function encodeRunner(info: RunnerInfo, now: number): string[] {
  const fields = [
    "kind",
    info.kind,
    "hostId",
    info.hostId,
    "hostname",
    info.hostname,
    "pid",
    String(info.pid),
    "startedAt",
    String(info.startedAt),
    "heartbeatAt",
    String(now),
  ];
  if (info.pidStart !== null) fields.push("pidStart", info.pidStart);
  return fields;
}

export function decodeRunner(id: string, hash: Hash): RunnerRecord | null {
  if (hash["heartbeatAt"] === undefined) return null;
  return {
    id,
    kind: hash["kind"] ?? "",
    hostId: hash["hostId"] ?? "",
    hostname: hash["hostname"] ?? "",
    pid: Number(hash["pid"]),
    pidStart: hash["pidStart"] ?? null,
    startedAt: Number(hash["startedAt"]),
    heartbeatAt: Number(hash["heartbeatAt"]),
    stoppedAt: numberOr(hash["stoppedAt"], null),
    deadAt: numberOr(hash["deadAt"], null),
  };
}

/**
 * A batch of rows of `width` strings as the scripts' `rows` reads it: one JSON array of the row
 * count, then per column the value every row shares (false where rows differ), then the differing
 * columns' values row by row. A worker's batch shares most columns (its runner, the statuses, the
 * time), and every string a script decodes is a share of what the script costs the server.
 */
export function encodeBatch(width: number, rows: readonly (readonly string[])[]): string {
  const out: (number | string | false)[] = [rows.length];
  const varying: number[] = [];
  for (let column = 0; column < width; column++) {
    const first = rows[0]?.[column];
    if (first !== undefined && rows.every((row) => row[column] === first)) {
      out.push(first);
    } else {
      out.push(false);
      varying.push(column);
    }
  }
  for (const row of rows) for (const column of varying) out.push(row[column]!);
  return JSON.stringify(out);
}
