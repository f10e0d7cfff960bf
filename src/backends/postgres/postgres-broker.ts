import { CLAIMABLE_STATUSES, CLAIMED_STATUS, STARTED_STATUS, type Status } from "../../core/status.js";
import type { Broker, ClaimOptions } from "../../ports/backend.js";
import type { ClaimedInvocation } from "../../ports/records.js";
import type { PostgresConnection, Statement } from "./postgres-connection.js";
import { historyHead, historyTail } from "./postgres-history.js";
import type { PostgresListener } from "./postgres-listener.js";
import type { RowHints } from "./postgres-row-hints.js";

/**
 * One statement: lock the runner's row (a retire waits for the claim, or the claim sees the
 * retire), pick the oldest ready invocations nobody else is locking (SKIP LOCKED: concurrent
 * claims take different rows instead of queueing on each other), and make each the runner's at
 * the next attempt, with its history entry; a claim to start ($6, the status it ends in, is not the
 * claimed status) also goes on to that status with a second entry ($9, '' for none). The entries'
 * text around the attempt comes from the client ($7, $9 and $8, see postgres-history.ts): the
 * server only joins strings. The rows come back in queue order. The queue's index holds every
 * invocation not final yet (migration 5), so the pick steps over those in flight by their status,
 * and the update leaves ready_at and seq as they are: it changes no indexed column.
 * The update finds each picked row by its ctid, the version the pick locked (a locked row cannot
 * move before this statement ends): no second index walk, and no join plan that could read the
 * whole app instead. It answers with each row's new ctid too, kept as a hint for the final write
 * (postgres-row-hints.ts).
 */
export const CLAIM = {
  name: "nenc_claim",
  text: `
    WITH runner AS (
      SELECT 1 FROM nenc.runners WHERE app_id = $1 AND id = $2 AND dead_at IS NULL AND stopped_at IS NULL FOR SHARE
    ), picked AS (
      SELECT i.ctid, i.id, i.ready_at, i.seq FROM nenc.invocations i
      WHERE i.app_id = $1 AND i.ready_at <= $3 AND NOT i.final AND i.status = ANY($5::text[]) AND EXISTS (SELECT 1 FROM runner)
      ORDER BY i.ready_at, i.seq
      LIMIT $4
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE nenc.invocations i SET status = $6::text, owner = $2, attempt = i.attempt + 1, updated_at = $3,
        history = i.history || $7::text || (i.attempt + 1) || $8::text
          || CASE WHEN $9::text = '' THEN '' ELSE $9::text || (i.attempt + 1) || $8::text END
      FROM picked p
      WHERE i.ctid = p.ctid
      RETURNING i.id, i.task_id, i.args, i.attempt, i.retries, i.parent_id, i.ctid AS row, p.ready_at AS queued_at, p.seq AS queued_seq
    )
    SELECT id, task_id, args, attempt, retries, parent_id, row::text FROM claimed ORDER BY queued_at, queued_seq`,
};

const QUEUE_LENGTH = `
  SELECT count(*) AS n FROM nenc.invocations
  WHERE app_id = $1 AND ready_at <= $2 AND NOT final AND status = ANY($3::text[])`;

interface ClaimedRow {
  id: string;
  task_id: string;
  args: string;
  attempt: number;
  retries: number;
  parent_id: string | null;
  row: string;
}

export class PostgresBroker implements Broker {
  readonly #db: PostgresConnection;
  readonly #listener: PostgresListener;
  readonly #hints: RowHints;

  constructor(db: PostgresConnection, listener: PostgresListener, hints: RowHints) {
    this.#db = db;
    this.#listener = listener;
    this.#hints = hints;
  }

  /** The claim statement, with parameters that claim nothing: for PostgresConnection.warm. */
  idleClaim(): { statement: Statement; values: unknown[] } {
    return { statement: CLAIM, values: this.#claimValues("", 0, Date.now(), STARTED_STATUS) };
  }

  async claim(runnerId: string, max: number, now: number, options: ClaimOptions = {}): Promise<ClaimedInvocation[]> {
    if (max <= 0) return [];
    const rows = await this.#db.query<ClaimedRow>(
      CLAIM,
      this.#claimValues(runnerId, max, now, options.start ? STARTED_STATUS : CLAIMED_STATUS),
    );
    return rows.map((row) => {
      this.#hints.remember(row.id, row.row);
      return {
        id: row.id,
        taskId: row.task_id,
        args: row.args,
        attempt: row.attempt,
        retries: row.retries,
        parentId: row.parent_id,
      };
    });
  }

  #claimValues(runnerId: string, max: number, now: number, ends: Status): unknown[] {
    return [
      this.#db.appId,
      runnerId,
      now,
      max,
      CLAIMABLE_STATUSES,
      ends,
      historyHead(CLAIMED_STATUS, now),
      historyTail(runnerId),
      ends === CLAIMED_STATUS ? "" : historyHead(ends, now),
    ];
  }

  async queueLength(now: number): Promise<number> {
    const [row] = await this.#db.query<{ n: number }>(QUEUE_LENGTH, [this.#db.appId, now, CLAIMABLE_STATUSES]);
    return row?.n ?? 0;
  }

  subscribe(listener: () => void): () => void {
    return this.#listener.subscribe(listener);
  }
}
