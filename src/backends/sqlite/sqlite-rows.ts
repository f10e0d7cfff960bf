import { NencError } from "../../core/errors.js";
import { STATUSES } from "../../core/status.js";
import type { ClaimedInvocation, HistoryView, InvocationRecord, LogLevel, LogLine, RunnerRecord } from "../../ports/records.js";

/**
 * Rows as SQLite hands them back, checked before they become records. Columns are aliased to the
 * record's field names in SQL, so a sound row is returned as it is, with no copy.
 */

/** A stored row nenc cannot read (a status it does not know, a field of the wrong type). */
export class CorruptRecordError extends NencError {
  override name = "CorruptRecordError";
  constructor(
    readonly table: string,
    readonly key: string,
    readonly field: string,
    readonly value: unknown,
  ) {
    super(`corrupt ${table} row ${key}: ${field} is ${describe(value)}, which nenc cannot read; the row is left as it is`);
  }
}

export const INVOCATION_COLUMNS =
  "id, task_id AS taskId, call_id AS callId, args, status, attempt, owner, retries, ready_at AS readyAt, " +
  "parent_id AS parentId, result, error, created_at AS createdAt, updated_at AS updatedAt";

/** In this order: toClaimed reads them by position. */
export const CLAIMED_COLUMNS = "seq, id, task_id, args, attempt, retries, parent_id";

export const RUNNER_COLUMNS =
  "id, kind, host_id AS hostId, hostname, pid, pid_start AS pidStart, started_at AS startedAt, " +
  "heartbeat_at AS heartbeatAt, stopped_at AS stoppedAt, dead_at AS deadAt";

const KNOWN_STATUSES: ReadonlySet<string> = new Set(STATUSES);
const LEVELS: ReadonlySet<string> = new Set<LogLevel>(["debug", "info", "warn", "error"]);

type Row = Record<string, unknown>;

const TEXT = (v: unknown) => typeof v === "string";
const TEXT_OR_NULL = (v: unknown) => v === null || typeof v === "string";
const INT = (v: unknown) => typeof v === "number" && Number.isInteger(v);
const INT_OR_NULL = (v: unknown) => v === null || INT(v);
const STATUS = (v: unknown) => typeof v === "string" && KNOWN_STATUSES.has(v);
const LEVEL = (v: unknown) => typeof v === "string" && LEVELS.has(v);

type Shape = Readonly<Record<string, (value: unknown) => boolean>>;

const INVOCATION_SHAPE: Shape = {
  id: TEXT,
  taskId: TEXT,
  callId: TEXT,
  args: TEXT,
  status: STATUS,
  attempt: INT,
  owner: TEXT_OR_NULL,
  retries: INT,
  readyAt: INT_OR_NULL,
  parentId: TEXT_OR_NULL,
  result: TEXT_OR_NULL,
  error: TEXT_OR_NULL,
  createdAt: INT,
  updatedAt: INT,
};

const HISTORY_SHAPE: Shape = {
  status: STATUS,
  at: INT,
  attempt: INT,
  runnerId: TEXT_OR_NULL,
  hostname: TEXT_OR_NULL,
  pid: INT_OR_NULL,
};

const LOG_SHAPE: Shape = { attempt: INT, runnerId: TEXT, at: INT, level: LEVEL, message: TEXT };

const RUNNER_SHAPE: Shape = {
  id: TEXT,
  kind: TEXT,
  hostId: TEXT,
  hostname: TEXT,
  pid: INT,
  pidStart: TEXT_OR_NULL,
  startedAt: INT,
  heartbeatAt: INT,
  stoppedAt: INT_OR_NULL,
  deadAt: INT_OR_NULL,
};

function check(table: string, key: string, row: Row, shape: Shape): void {
  for (const field in shape) {
    if (!shape[field]!(row[field])) throw new CorruptRecordError(table, key, field, row[field]);
  }
}

function keyOf(row: Row, fallback: string): string {
  return typeof row["id"] === "string" ? row["id"] : fallback;
}

export function toInvocation(row: Row): InvocationRecord {
  check("invocations", keyOf(row, "(unreadable id)"), row, INVOCATION_SHAPE);
  return row as unknown as InvocationRecord;
}

export function toHistory(id: string, row: Row): HistoryView {
  check("history", `of invocation ${id}`, row, HISTORY_SHAPE);
  const { status, at, attempt, runnerId, hostname, pid } = row as unknown as HistoryView;
  return { status, at, attempt, runnerId, hostname, pid };
}

export function toLogLine(row: Row): LogLine {
  check("logs", `of invocation ${String(row["invocationId"])}`, row, LOG_SHAPE);
  return row as unknown as LogLine;
}

export function toRunner(row: Row): RunnerRecord {
  check("runners", keyOf(row, "(unreadable id)"), row, RUNNER_SHAPE);
  return row as unknown as RunnerRecord;
}

/**
 * A claimed row goes to a runner even when a field is damaged: the runner then fails that one
 * invocation with a clear error (unknown task, unreadable arguments) and carries on.
 */
export function toClaimed([, id, taskId, args, attempt, retries, parentId]: readonly unknown[]): ClaimedInvocation {
  return {
    id: asText(id),
    taskId: asText(taskId),
    args: asText(args),
    attempt: attempt as number,
    retries: INT(retries) ? (retries as number) : 0,
    parentId: parentId === null ? null : asText(parentId),
  };
}

function asText(value: unknown): string {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return String(value);
}

function describe(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte blob`;
  if (value === null) return "NULL";
  const text =
    typeof value === "string"
      ? JSON.stringify(value)
      : typeof value === "number" || typeof value === "bigint" || typeof value === "boolean"
        ? `${typeof value} ${value}`
        : typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Told of each row left out of a listing because it cannot be read, once per row. */
export type CorruptRowHandler = (error: CorruptRecordError) => void;

export function reportOnce(handler: CorruptRowHandler): CorruptRowHandler {
  const seen = new Set<string>();
  return (error) => {
    const key = `${error.table}\u0000${error.key}\u0000${error.field}`;
    if (seen.has(key)) return;
    seen.add(key);
    handler(error);
  };
}

/** Decode each row; an unreadable one is reported and left out, so one bad row spoils nothing else. */
export function decodeEach<T>(rows: readonly Row[], decode: (row: Row) => T, onCorrupt: CorruptRowHandler): T[] {
  const out: T[] = [];
  for (const row of rows) {
    try {
      out.push(decode(row));
    } catch (error) {
      if (!(error instanceof CorruptRecordError)) throw error;
      onCorrupt(error);
    }
  }
  return out;
}
