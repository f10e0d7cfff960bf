import { FINAL_STATUSES, isFinal, isStatus, STATUS_TABLE, type Status } from "../../core/status.js";
import type { StateStore } from "../../ports/backend.js";
import type { HistoryView, InvocationFilter, InvocationRecord, LogLevel, LogLine } from "../../ports/records.js";
import { arrayLiteral } from "./postgres-arrays.js";
import type { PostgresConnection } from "./postgres-connection.js";

const INVOCATION_COLUMNS = `id, task_id, call_id, args, status, attempt, owner, retries, ready_at, parent_id, result, error, created_at, updated_at`;

/**
 * Stores each line only while its attempt is current and owned by its runner. The invocation
 * rows are share-locked, so a transition that takes the invocation away either commits first (and
 * the line is refused) or waits until the lines are in. Each line looks its invocation up by id
 * (LATERAL: the lines are the outer side whatever the table's statistics say; joined plainly, a
 * table the planner took for nearly empty was read whole, for every batch).
 */
export const APPEND_LOGS = {
  name: "nenc_append_logs",
  text: `
    INSERT INTO nenc.logs (app_id, invocation_id, attempt, runner_id, at, level, message)
    SELECT $1, l.invocation_id, l.attempt, l.runner_id, l.at, l.level, l.message
    FROM unnest($2::text[], $3::integer[], $4::text[], $5::bigint[], $6::text[], $7::text[])
         WITH ORDINALITY AS l(invocation_id, attempt, runner_id, at, level, message, ord)
    CROSS JOIN LATERAL (
      SELECT 1 FROM nenc.invocations i
      WHERE i.app_id = $1 AND i.id = l.invocation_id AND i.attempt = l.attempt AND i.owner = l.runner_id
      FOR SHARE
    ) current
    ORDER BY l.ord
    RETURNING 1`,
};

/** Served by the primary key; reads id and status only. */
const FINAL_AMONG = {
  name: "nenc_final_among",
  text: "SELECT id FROM nenc.invocations WHERE app_id = $1 AND id = ANY($2::text[]) AND status = ANY($3::text[])",
};

const HISTORY = `
  SELECT h.entry->>0 AS status, (h.entry->>1)::bigint AS at, (h.entry->>2)::integer AS attempt, h.entry->>3 AS runner_id,
         r.hostname, r.pid
  FROM nenc.invocations i
  CROSS JOIN LATERAL json_array_elements(('[' || i.history || ']')::json) WITH ORDINALITY AS h(entry, ord)
  LEFT JOIN nenc.runners r ON r.app_id = i.app_id AND r.id = h.entry->>3
  WHERE i.app_id = $1 AND i.id = $2
  ORDER BY h.ord`;

interface InvocationRow {
  id: string;
  task_id: string;
  call_id: string;
  args: string;
  status: string;
  attempt: number;
  owner: string | null;
  retries: number;
  ready_at: number | null;
  parent_id: string | null;
  result: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
}

export class PostgresState implements StateStore {
  readonly #db: PostgresConnection;

  constructor(db: PostgresConnection) {
    this.#db = db;
  }

  async get(id: string): Promise<InvocationRecord | null> {
    const [row] = await this.#db.query<InvocationRow>(
      { name: "nenc_get", text: `SELECT ${INVOCATION_COLUMNS} FROM nenc.invocations WHERE app_id = $1 AND id = $2` },
      [this.#db.appId, id],
    );
    return row ? invocationRecord(row) : null;
  }

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.#db.query<{ id: string }>(FINAL_AMONG, [this.#db.appId, arrayLiteral(ids), FINAL_STATUSES]);
    return rows.map((row) => row.id);
  }

  async list(filter: InvocationFilter): Promise<InvocationRecord[]> {
    const values: unknown[] = [this.#db.appId];
    const where = ["app_id = $1"];
    const add = (condition: string, value: unknown) => {
      values.push(value);
      where.push(condition.replace("?", `$${values.length}`));
    };
    if (filter.statuses) add("status = ANY(?::text[])", filter.statuses);
    // Lets the in-flight index serve the common look-ups (recovery's owned and orphaned statuses).
    if (filter.statuses && !filter.statuses.some(isFinal)) where.push("NOT final");
    if (filter.taskId !== undefined) add("task_id = ?", filter.taskId);
    if (filter.owner !== undefined) add("owner = ?", filter.owner);
    if (filter.updatedBefore !== undefined) add("updated_at <= ?", filter.updatedBefore);
    let sql = `SELECT ${INVOCATION_COLUMNS} FROM nenc.invocations WHERE ${where.join(" AND ")} ORDER BY created_seq`;
    if (filter.limit !== undefined) {
      values.push(filter.limit);
      sql += ` LIMIT $${values.length}`;
    }
    return (await this.#db.query<InvocationRow>(sql, values)).map(invocationRecord);
  }

  async history(id: string): Promise<HistoryView[]> {
    const rows = await this.#db.query<{
      status: string;
      at: number;
      attempt: number;
      runner_id: string | null;
      hostname: string | null;
      pid: number | null;
    }>(HISTORY, [this.#db.appId, id]);
    return rows.map((row) => ({
      status: statusOf(row.status),
      at: row.at,
      attempt: row.attempt,
      runnerId: row.runner_id,
      hostname: row.hostname,
      pid: row.pid,
    }));
  }

  async appendLogs(lines: readonly LogLine[]): Promise<number> {
    if (lines.length === 0) return 0;
    const column = <K extends keyof LogLine>(key: K) => arrayLiteral(lines.map((line) => line[key]));
    const rows = await this.#db.query(APPEND_LOGS, [
      this.#db.appId,
      column("invocationId"),
      column("attempt"),
      column("runnerId"),
      column("at"),
      column("level"),
      column("message"),
    ]);
    return rows.length;
  }

  async logs(id: string): Promise<LogLine[]> {
    const rows = await this.#db.query<{ attempt: number; runner_id: string; at: number; level: LogLevel; message: string }>(
      "SELECT attempt, runner_id, at, level, message FROM nenc.logs WHERE app_id = $1 AND invocation_id = $2 ORDER BY seq",
      [this.#db.appId, id],
    );
    return rows.map((row) => ({
      invocationId: id,
      attempt: row.attempt,
      runnerId: row.runner_id,
      at: row.at,
      level: row.level,
      message: row.message,
    }));
  }

  async counts(): Promise<Partial<Record<Status, number>>> {
    const rows = await this.#db.query<{ status: string; n: number }>(
      "SELECT status, count(*) AS n FROM nenc.invocations WHERE app_id = $1 GROUP BY status",
      [this.#db.appId],
    );
    return Object.fromEntries(rows.map((row) => [statusOf(row.status), row.n]));
  }

  /** Every row of this app, in one transaction; other apps' rows are untouched. */
  async purge(): Promise<void> {
    await this.#db.transaction(async (query) => {
      for (const table of ["logs", "invocations", "runners", "leases"]) {
        await query(`DELETE FROM nenc.${table} WHERE app_id = $1`, [this.#db.appId]);
      }
    });
  }
}

function statusOf(value: string): Status {
  if (!isStatus(value)) throw new Error(`the database holds an unknown status "${value}"`);
  return value;
}

function invocationRecord(row: InvocationRow): InvocationRecord {
  const status = statusOf(row.status);
  return {
    id: row.id,
    taskId: row.task_id,
    callId: row.call_id,
    args: row.args,
    status,
    attempt: row.attempt,
    owner: row.owner,
    retries: row.retries,
    // Kept while the invocation is claimed and runs (migration 5); it is a queue position only while claimable.
    readyAt: STATUS_TABLE[status].claimable === true ? row.ready_at : null,
    parentId: row.parent_id,
    result: row.result,
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
