import { NencError } from "../../core/errors.js";
import type { Status } from "../../core/status.js";
import type { TransitionRequest } from "../../core/transition.js";
import type { Orchestrator } from "../../ports/backend.js";
import type { NewInvocation, RunnerInfo, RunnerRecord } from "../../ports/records.js";
import { decodeEach, RUNNER_COLUMNS, toRunner, type CorruptRowHandler } from "./sqlite-rows.js";
import type { Eventually, SqliteLocking } from "./sqlite-locking.js";
import type { SqliteRowIds } from "./sqlite-row-ids.js";
import type { AfterCommit, SqliteDatabase } from "./sqlite-schema.js";

/** What a new invocation is, as the port defines it. */
const REGISTERED: Status = "REGISTERED";

type Row = Record<string, unknown>;

/**
 * Status writes, runners and leases. Every method that writes is one IMMEDIATE transaction; a
 * transition is an UPDATE whose WHERE is the request's expectation, so it applies only if nobody
 * changed the invocation since it was read. History rows come from the schema's triggers.
 */
export class SqliteOrchestrator implements Orchestrator {
  readonly #afterCommit: AfterCommit;
  readonly #onCorrupt: CorruptRowHandler;
  readonly #locking: SqliteLocking;
  readonly #register: (invocations: readonly NewInvocation[]) => Eventually<void>;
  readonly #transition: (requests: readonly TransitionRequest[]) => Eventually<boolean[]>;
  readonly #registerRunner: (info: RunnerInfo, now: number) => Eventually<void>;
  readonly #heartbeat: (runnerId: string, now: number) => Eventually<boolean>;
  readonly #retire: (runnerIds: readonly string[], how: "stopped" | "dead", now: number) => Eventually<string[]>;
  readonly #acquireLease: (name: string, holder: string, now: number, ttlMs: number, replacing: string | null) => Eventually<boolean>;
  readonly #releaseLease: (name: string, holder: string) => Eventually<void>;
  readonly #runners;

  constructor(db: SqliteDatabase, locking: SqliteLocking, rowIds: SqliteRowIds, afterCommit: AfterCommit, onCorrupt: CorruptRowHandler) {
    this.#locking = locking;
    this.#afterCommit = afterCommit;
    this.#onCorrupt = onCorrupt;
    this.#register = registerIn(db, locking);
    this.#transition = transitionIn(db, locking, rowIds);

    const upsertRunner = db.prepare<[string, string, string, string, number, string | null, number, number]>(
      `INSERT OR REPLACE INTO runners (id, kind, host_id, hostname, pid, pid_start, started_at, heartbeat_at, stopped_at, dead_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
    );
    this.#registerRunner = locking.writer((r: RunnerInfo, now: number) => {
      upsertRunner.run(r.id, r.kind, r.hostId, r.hostname, r.pid, r.pidStart, r.startedAt, now);
    });

    const beat = db.prepare<[number, string]>(
      "UPDATE runners SET heartbeat_at = max(heartbeat_at, ?) WHERE id = ? AND dead_at IS NULL AND stopped_at IS NULL",
    );
    this.#heartbeat = locking.writer((runnerId: string, now: number) => beat.run(now, runnerId).changes > 0);

    const notRetired = "dead_at IS NULL AND stopped_at IS NULL";
    const retireDead = db.prepare<[number, string]>(`UPDATE runners SET dead_at = ? WHERE id = ? AND ${notRetired}`);
    const retireStopped = db.prepare<[number, string]>(`UPDATE runners SET stopped_at = ? WHERE id = ? AND ${notRetired}`);
    this.#retire = locking.writer((ids: readonly string[], how: "stopped" | "dead", now: number) => {
      const statement = how === "dead" ? retireDead : retireStopped;
      return ids.filter((id) => statement.run(now, id).changes > 0);
    });

    // Free when missing, expired, already the holder's, or held by `replacing`.
    const takeLease = db.prepare<[string, string, number, string | null, number]>(
      `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.holder = ? OR leases.expires_at <= ?`,
    );
    this.#acquireLease = locking.writer(
      (name: string, holder: string, now: number, ttlMs: number, replacing: string | null) =>
        takeLease.run(name, holder, now + ttlMs, replacing, now).changes > 0,
    );

    const dropLease = db.prepare<[string, string]>("DELETE FROM leases WHERE name = ? AND holder = ?");
    this.#releaseLease = locking.writer((name: string, holder: string) => {
      dropLease.run(name, holder);
    });

    this.#runners = db.prepare<[], Row>(`SELECT ${RUNNER_COLUMNS} FROM runners ORDER BY started_at, id`);
  }

  async register(invocations: readonly NewInvocation[]): Promise<void> {
    if (invocations.length === 0) return;
    await this.#register(invocations);
    this.#afterCommit(true);
  }

  async transition(requests: readonly TransitionRequest[]): Promise<boolean[]> {
    if (requests.length === 0) return [];
    const applied = await this.#transition(requests);
    this.#afterCommit(applied.includes(true));
    return applied;
  }

  async registerRunner(info: RunnerInfo, now: number): Promise<void> {
    await this.#registerRunner(info, now);
    this.#afterCommit(false);
  }

  async heartbeat(runnerId: string, now: number): Promise<boolean> {
    const alive = await this.#heartbeat(runnerId, now);
    this.#afterCommit(false);
    return alive;
  }

  async retireRunners(runnerIds: readonly string[], how: "stopped" | "dead", now: number): Promise<string[]> {
    if (runnerIds.length === 0) return [];
    const retired = await this.#retire(runnerIds, how, now);
    this.#afterCommit(false);
    return retired;
  }

  async runners(): Promise<RunnerRecord[]> {
    const rows = await this.#locking.read(() => this.#runners.all());
    return decodeEach(rows, toRunner, this.#onCorrupt);
  }

  async acquireLease(name: string, holder: string, now: number, ttlMs: number, replacing?: string): Promise<boolean> {
    const acquired = await this.#acquireLease(name, holder, now, ttlMs, replacing ?? null);
    this.#afterCommit(false);
    return acquired;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#releaseLease(name, holder);
    this.#afterCommit(false);
  }
}

function registerIn(db: SqliteDatabase, locking: SqliteLocking): (invocations: readonly NewInvocation[]) => Eventually<void> {
  const insert = db.prepare<[string, string, string, string, string, number, string | null, number, number]>(
    `INSERT INTO invocations (id, task_id, call_id, args, status, attempt, owner, retries, ready_at, parent_id, created_at, updated_at, changed_by)
     VALUES (?, ?, ?, ?, ?, 0, NULL, 0, ?, ?, ?, ?, NULL)`,
  );
  return locking.writer((invocations: readonly NewInvocation[]) => {
    for (const inv of invocations) {
      try {
        insert.run(inv.id, inv.taskId, inv.callId, inv.args, REGISTERED, inv.readyAt, inv.parentId, inv.createdAt, inv.createdAt);
      } catch (error) {
        if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_UNIQUE") {
          throw new NencError(`invocation ${inv.id} already exists`);
        }
        throw error;
      }
    }
  });
}

/**
 * Each request is a compare-and-set on (status, attempt[, owner]); later ones see earlier ones.
 * The row is found by its seq when this process claimed it (SqliteRowIds), else by its id.
 */
function transitionIn(
  db: SqliteDatabase,
  locking: SqliteLocking,
  rowIds: SqliteRowIds,
): (requests: readonly TransitionRequest[]) => Eventually<boolean[]> {
  const set =
    "UPDATE invocations SET status = ?, owner = ?, attempt = ?, ready_at = ?, updated_at = ?, changed_by = ?, changes = changes + 1, " +
    "result = coalesce(?, result), error = coalesce(?, error), retries = coalesce(?, retries) ";
  const expected = "AND status = ? AND attempt = ?";
  type Values = [string, string | null, number, number | null, number, string | null, string | null, string | null, number | null];
  type Expected = [string, number];
  const byId = db.prepare<[...Values, string, ...Expected]>(`${set} WHERE id = ? ${expected}`);
  const byIdOwned = db.prepare<[...Values, string, ...Expected, string | null]>(`${set} WHERE id = ? ${expected} AND owner IS ?`);
  const bySeq = db.prepare<[...Values, number, string, ...Expected]>(`${set} WHERE seq = ? AND id = ? ${expected}`);
  const bySeqOwned = db.prepare<[...Values, number, string, ...Expected, string | null]>(
    `${set} WHERE seq = ? AND id = ? ${expected} AND owner IS ?`,
  );

  const apply = (r: TransitionRequest): boolean => {
    const { expect } = r;
    // `by` is stored only when someone other than the (new) owner made the change.
    const values: Values = [
      r.to,
      r.owner,
      r.attempt,
      r.readyAt,
      r.at,
      r.by === r.owner ? null : r.by,
      r.result ?? null,
      r.error ?? null,
      r.retries ?? null,
    ];
    const held: Expected = [expect.status, expect.attempt];
    const seq = rowIds.seqOf(r.id);
    if (seq !== undefined) {
      const { changes } =
        expect.owner === undefined ? bySeq.run(...values, seq, r.id, ...held) : bySeqOwned.run(...values, seq, r.id, ...held, expect.owner);
      if (changes > 0) return true;
    }
    const { changes } =
      expect.owner === undefined ? byId.run(...values, r.id, ...held) : byIdOwned.run(...values, r.id, ...held, expect.owner);
    return changes > 0;
  };
  return locking.writer((requests: readonly TransitionRequest[]) => requests.map(apply));
}
