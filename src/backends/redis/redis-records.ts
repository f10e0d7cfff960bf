import type { Status } from "../../core/status.js";
import type { HistoryEntry, InvocationRecord, LogLine, RunnerInfo, RunnerRecord } from "../../ports/records.js";

/**
 * How records are laid out in Redis. An invocation is a hash (a null field is absent); its history
 * a list of `status|at|attempt|runnerId` entries (written by the scripts); its logs a list of JSON
 * lines; a runner a hash.
 */

type Hash = Record<string, string>;

const numberOr = (value: string | undefined, fallback: number | null): number | null =>
  value === undefined ? fallback : Number(value);

export function decodeInvocation(id: string, hash: Hash): InvocationRecord | null {
  if (hash["status"] === undefined) return null;
  return {
    id,
    taskId: hash["taskId"] ?? "",
    callId: hash["callId"] ?? "",
    args: hash["args"] ?? "",
    status: hash["status"] as Status,
    attempt: Number(hash["attempt"]),
    owner: hash["owner"] ?? null,
    retries: Number(hash["retries"]),
    readyAt: numberOr(hash["readyAt"], null),
    parentId: hash["parentId"] ?? null,
    result: hash["result"] ?? null,
    error: hash["error"] ?? null,
    createdAt: Number(hash["createdAt"]),
    updatedAt: Number(hash["updatedAt"]),
  };
}

export function decodeHistoryEntry(entry: string): HistoryEntry {
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
    "kind", info.kind,
    "hostId", info.hostId,
    "hostname", info.hostname,
    "pid", String(info.pid),
    "startedAt", String(info.startedAt),
    "heartbeatAt", String(now),
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
