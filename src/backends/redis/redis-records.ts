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
