import { CLAIMED_STATUS, STARTED_STATUS } from "../../core/status.js";
import type { Broker, ClaimOptions } from "../../ports/backend.js";
import type { ClaimedInvocation } from "../../ports/records.js";
import { CLAIMED_COLUMNS, toClaimed } from "./sqlite-rows.js";
import type { Eventually, SqliteLocking } from "./sqlite-locking.js";
import type { SqliteRowIds } from "./sqlite-row-ids.js";
import { IS_CLAIMABLE, type AfterCommit, type SqliteDatabase } from "./sqlite-schema.js";

/** A RETURNING row as an array (cheaper than an object): CLAIMED_COLUMNS, seq first, then `changes`. */
type ClaimRow = [number, ...unknown[]];
const ATTEMPT = CLAIMED_COLUMNS.split(", ").indexOf("attempt");
const CHANGES = CLAIMED_COLUMNS.split(", ").length;

/**
 * The queue is the partial index invocations_queue: the rows whose ready_at is set, in
 * (ready_at, seq) order. A claim is one UPDATE over the head of that index in one IMMEDIATE
 * transaction, so two processes can never claim the same attempt; its history rows are written
 * by the schema's trigger. A claim to start writes the final status (RUNNING) and counts two
 * changes; the history row of the status it passed through (PENDING) is inserted beside the
 * trigger's. A runner that is unknown or retired claims nothing.
 */

export class SqliteBroker implements Broker {
  readonly #afterCommit: AfterCommit;
  readonly #subscribe: (listener: () => void) => () => void;
  readonly #locking: SqliteLocking;
  readonly #rowIds: SqliteRowIds;
  readonly #claim: (runnerId: string, max: number, now: number, start: boolean) => Eventually<ClaimRow[]>;
  readonly #anyReady;
  readonly #queueLength;

  constructor(
    db: SqliteDatabase,
    locking: SqliteLocking,
    rowIds: SqliteRowIds,
    afterCommit: AfterCommit,
    subscribe: (listener: () => void) => () => void,
  ) {
    this.#locking = locking;
    this.#rowIds = rowIds;
    this.#afterCommit = afterCommit;
    this.#subscribe = subscribe;
    const claim = db.prepare<[string, string, number, number, string, number, number], ClaimRow>(
      `UPDATE invocations SET status = ?, owner = ?, changed_by = NULL, changes = changes + ?, attempt = attempt + 1, ready_at = NULL, updated_at = ?
       WHERE seq IN (
         SELECT seq FROM invocations
         WHERE EXISTS (SELECT 1 FROM runners WHERE id = ? AND dead_at IS NULL AND stopped_at IS NULL)
           AND ready_at <= ? AND ${IS_CLAIMABLE}
         ORDER BY ready_at, seq LIMIT ?
       )
       RETURNING ${CLAIMED_COLUMNS}, changes`,
    );
    claim.raw();
    const passedThrough = db.prepare<[number, number, string, number, number, string]>(
      "INSERT INTO history (inv_seq, n, status, at, attempt, runner_id) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#claim = locking.writer((runnerId: string, max: number, now: number, start: boolean) => {
      if (!start) return claim.all(CLAIMED_STATUS, runnerId, 1, now, runnerId, now, max);
      const rows = claim.all(STARTED_STATUS, runnerId, 2, now, runnerId, now, max);
      for (const row of rows) {
        passedThrough.run(row[0], (row[CHANGES] as number) - 1, CLAIMED_STATUS, now, row[ATTEMPT] as number, runnerId);
      }
      return rows;
    });
    this.#anyReady = db.prepare<[number], number>(`SELECT 1 FROM invocations WHERE ready_at <= ? AND ${IS_CLAIMABLE} LIMIT 1`).pluck();
    this.#queueLength = db.prepare<[number], number>(`SELECT count(*) FROM invocations WHERE ready_at <= ? AND ${IS_CLAIMABLE}`).pluck();
  }

  async claim(runnerId: string, max: number, now: number, options: ClaimOptions = {}): Promise<ClaimedInvocation[]> {
    // A read first: an idle runner (woken by a timer or someone else's write) takes no write lock.
    if (max <= 0 || (await this.#locking.read(() => this.#anyReady.get(now))) === undefined) return [];
    const rows = await this.#claim(runnerId, Math.floor(max), now, options.start === true);
    this.#afterCommit(rows.length > 0);
    if (rows.length === 0) return [];
    // RETURNING gives no order; the queue order among rows claimed together is their seq.
    rows.sort((a, b) => a[0] - b[0]);
    return rows.map((row) => {
      const claimed = toClaimed(row);
      this.#rowIds.remember(claimed.id, row[0]);
      return claimed;
    });
  }

  async queueLength(now: number): Promise<number> {
    return (await this.#locking.read(() => this.#queueLength.get(now))) ?? 0;
  }

  subscribe(listener: () => void): () => void {
    return this.#subscribe(listener);
  }
}
