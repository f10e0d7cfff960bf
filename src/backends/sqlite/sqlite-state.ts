import type Database from "better-sqlite3";
import { FINAL_STATUSES, STATUSES, type Status } from "../../core/status.js";
import type { StateStore } from "../../ports/backend.js";
import type { HistoryView, InvocationFilter, InvocationRecord, LogLine } from "../../ports/records.js";
import {
  CorruptRecordError,
  decodeEach,
  INVOCATION_COLUMNS,
  toHistory,
  toInvocation,
  toLogLine,
  type CorruptRowHandler,
} from "./sqlite-rows.js";
import type { Eventually, SqliteLocking } from "./sqlite-locking.js";
import type { SqliteRowIds } from "./sqlite-row-ids.js";
import { ACTIVE_STATUSES, IS_ACTIVE, statusIsOneOf, type AfterCommit, type SqliteDatabase } from "./sqlite-schema.js";

type Row = Record<string, unknown>;
type Statement = Database.Statement<unknown[], Row>;

const KNOWN_STATUSES: ReadonlySet<string> = new Set(STATUSES);
const ACTIVE: ReadonlySet<Status> = new Set(ACTIVE_STATUSES);

/** Reads for handles, the CLI and recovery, plus the fenced log writes. */
export class SqliteState implements StateStore {
  readonly #db: SqliteDatabase;
  readonly #afterCommit: AfterCommit;
  readonly #onCorrupt: CorruptRowHandler;
  readonly #lists = new Map<string, Statement>();
  readonly #get;
  readonly #finalAmong;
  readonly #history;
  readonly #logs;
  readonly #counts;
  readonly #locking: SqliteLocking;
  readonly #appendLogs: (lines: readonly LogLine[]) => Eventually<number>;
  readonly #purge: () => Eventually<void>;

  constructor(db: SqliteDatabase, locking: SqliteLocking, rowIds: SqliteRowIds, afterCommit: AfterCommit, onCorrupt: CorruptRowHandler) {
    this.#db = db;
    this.#locking = locking;
    this.#afterCommit = afterCommit;
    this.#onCorrupt = onCorrupt;
    this.#get = db.prepare<[string], Row>(`SELECT ${INVOCATION_COLUMNS} FROM invocations WHERE id = ?`);
    // The ids arrive as one JSON array; each is looked up by the unique index on id.
    this.#finalAmong = db
      .prepare<[string], string>(
        `SELECT id FROM invocations WHERE id IN (SELECT value FROM json_each(?)) AND ${statusIsOneOf(FINAL_STATUSES)}`,
      )
      .pluck();
    // The REGISTERED entry comes from the row itself (see the schema), then the stored ones.
    this.#history = db.prepare<[string, string], Row>(
      `SELECT 0 AS n, 'REGISTERED' AS status, created_at AS at, 0 AS attempt, NULL AS runnerId, NULL AS hostname, NULL AS pid
       FROM invocations WHERE id = ?
       UNION ALL
       SELECT h.n, h.status, h.at, h.attempt, h.runner_id, r.hostname, r.pid
       FROM invocations i JOIN history h ON h.inv_seq = i.seq LEFT JOIN runners r ON r.id = h.runner_id
       WHERE i.id = ?
       ORDER BY n`,
    );
    this.#logs = db.prepare<[string], Row>(
      `SELECT i.id AS invocationId, l.attempt, l.runner_id AS runnerId, l.at, l.level, l.message
       FROM invocations i JOIN logs l ON l.inv_seq = i.seq
       WHERE i.id = ? ORDER BY l.rowid`,
    );
    this.#counts = db.prepare<[], { status: unknown; n: number }>("SELECT status, count(*) AS n FROM invocations GROUP BY status");

    // Fenced: stored only while the line's attempt is current and owned by the line's runner.
    const appendLog = db.prepare<[number, string, number, string, string, string, number, string]>(
      `INSERT INTO logs (inv_seq, attempt, runner_id, at, level, message)
       SELECT seq, ?, ?, ?, ?, ? FROM invocations WHERE id = ? AND attempt = ? AND owner = ?`,
    );
    this.#appendLogs = locking.writer((lines: readonly LogLine[]) => {
      let stored = 0;
      for (const l of lines) {
        stored += appendLog.run(l.attempt, l.runnerId, l.at, l.level, l.message, l.invocationId, l.attempt, l.runnerId).changes;
      }
      return stored;
    });

    const purge = ["invocations", "history", "logs", "runners", "leases"].map((table) => db.prepare(`DELETE FROM ${table}`));
    this.#purge = locking.writer(() => {
      for (const statement of purge) statement.run();
      rowIds.clear();
    });
  }

  /** Throws CorruptRecordError, naming the row and field, when the stored row cannot be read. */
  async get(id: string): Promise<InvocationRecord | null> {
    const row = await this.#locking.read(() => this.#get.get(id));
    return row ? toInvocation(row) : null;
  }

  async finalAmong(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const json = JSON.stringify(ids);
    return this.#locking.read(() => this.#finalAmong.all(json));
  }

  /** Oldest first. A row that cannot be read is reported and left out. */
  async list(filter: InvocationFilter): Promise<InvocationRecord[]> {
    if (filter.statuses?.length === 0 || filter.limit === 0) return [];
    const { sql, params } = listQuery(filter);
    let statement = this.#lists.get(sql);
    if (!statement) this.#lists.set(sql, (statement = this.#db.prepare<unknown[], Row>(sql)));
    const rows = await this.#locking.read(() => statement.all(...params));
    return decodeEach(rows, toInvocation, this.#onCorrupt);
  }

  async history(id: string): Promise<HistoryView[]> {
    const rows = await this.#locking.read(() => this.#history.all(id, id));
    return decodeEach(rows, (row) => toHistory(id, row), this.#onCorrupt);
  }

  async appendLogs(lines: readonly LogLine[]): Promise<number> {
    if (lines.length === 0) return 0;
    const stored = await this.#appendLogs(lines);
    this.#afterCommit(false);
    return stored;
  }

  async logs(id: string): Promise<LogLine[]> {
    const rows = await this.#locking.read(() => this.#logs.all(id));
    return decodeEach(rows, toLogLine, this.#onCorrupt);
  }

  async counts(): Promise<Partial<Record<Status, number>>> {
    const counts: Partial<Record<Status, number>> = {};
    for (const { status, n } of await this.#locking.read(() => this.#counts.all())) {
      if (typeof status === "string" && KNOWN_STATUSES.has(status)) counts[status as Status] = n;
      else this.#onCorrupt(new CorruptRecordError("invocations", `(${n} rows)`, "status", status));
    }
    return counts;
  }

  async purge(): Promise<void> {
    await this.#purge();
    this.#afterCommit(true);
  }
}

/**
 * The SQL of a listing; its text depends only on the filter's shape, so statements are cached.
 * When every asked status is active, the active index's own condition is repeated so SQLite can
 * use that partial index (it must see the index's WHERE in the query's).
 */
function listQuery(filter: InvocationFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.statuses) {
    if (filter.statuses.every((s) => ACTIVE.has(s))) where.push(IS_ACTIVE);
    where.push(`status IN (${filter.statuses.map(() => "?").join(",")})`);
    params.push(...filter.statuses);
  }
  if (filter.taskId !== undefined) {
    where.push("task_id = ?");
    params.push(filter.taskId);
  }
  if (filter.owner !== undefined) {
    where.push("owner = ?");
    params.push(filter.owner);
  }
  if (filter.updatedBefore !== undefined) {
    where.push("updated_at <= ?");
    params.push(filter.updatedBefore);
  }
  let sql = `SELECT ${INVOCATION_COLUMNS} FROM invocations`;
  if (where.length) sql += ` WHERE ${where.join(" AND ")}`;
  sql += " ORDER BY seq";
  if (filter.limit !== undefined) {
    sql += " LIMIT ?";
    params.push(filter.limit);
  }
  return { sql, params };
}
