import { CLAIMABLE_STATUSES, CLAIMED_STATUS, STARTED_STATUS, type Status } from "../../core/status.js";
import type { Broker, ClaimOptions } from "../../ports/backend.js";
import type { ClaimedInvocation } from "../../ports/records.js";
import type { PostgresConnection, Statement } from "./postgres-connection.js";
import { historyHead, historyTail } from "./postgres-history.js";
import type { PostgresListener } from "./postgres-listener.js";
import { setNewest } from "./bounded-map.js";

/**
 * One statement: lock the runner's row (a retire waits for the claim, or the claim sees the
 * retire), pick the oldest ready invocations nobody else is locking (SKIP LOCKED: concurrent
 * claims take different rows instead of queueing on each other), and make each the runner's at
 * the next attempt, with its history entry; a claim to start ($6, the status it ends in, is not the
 * claimed status) also goes on to that status with a second entry ($9, '' for none). The entries'
 * text around the attempt comes from the client ($7, $9 and $8, see postgres-history.ts): the
 * server only joins strings. The rows come back in queue order, each with its queue position
 * (ready_at, seq). The queue's index holds every invocation not final yet (migration 5), so a pick
 * steps over those in flight by their status, and the update leaves ready_at and seq as they are:
 * it changes no indexed column. The pick starts after a queue position ($10, $11; the lowest
 * bigints for the head of the queue): see PostgresBroker.claim.
 * The update finds the picked rows by their ctids, the versions the pick locked (a locked row
 * cannot move before this statement ends): no second index walk, and no join plan that could read
 * the whole app instead. It takes them as one list, in one TID scan: a TID scan reads the table's
 * length from the kernel each time it starts (an lseek), so one started again for each row, as a
 * join by ctid does, was a system call per claimed row.
 */
export const CLAIM = {
  name: "nenc_claim",
  text: `
    WITH runner AS (
      SELECT 1 FROM nenc.runners WHERE app_id = $1 AND id = $2 AND dead_at IS NULL AND stopped_at IS NULL FOR SHARE
    ), picked AS (
      SELECT i.ctid FROM nenc.invocations i
      WHERE i.app_id = $1 AND (i.ready_at, i.seq) > ($10::bigint, $11::bigint) AND i.ready_at <= $3 AND NOT i.final
        AND i.status = ANY($5::text[]) AND EXISTS (SELECT 1 FROM runner)
      ORDER BY i.ready_at, i.seq
      LIMIT $4
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE nenc.invocations i SET status = $6::text, owner = $2, attempt = i.attempt + 1, updated_at = $3,
        history = i.history || $7::text || (i.attempt + 1) || $8::text
          || CASE WHEN $9::text = '' THEN '' ELSE $9::text || (i.attempt + 1) || $8::text END
      WHERE i.ctid = ANY(ARRAY(SELECT p.ctid FROM picked p))
      RETURNING i.id, i.task_id, i.args, i.attempt, i.retries, i.parent_id, i.ready_at AS queued_at, i.seq AS queued_seq
    )
    SELECT id, task_id, args, attempt, retries, parent_id, queued_at, queued_seq FROM claimed ORDER BY queued_at, queued_seq`,
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
  queued_at: number;
  queued_seq: number;
}

/** A place in the queue: an invocation's ready_at and seq, as the claim's parameters take them. */
type QueuePosition = readonly [readyAt: string, seq: string];

/** Before every invocation: a claim from here walks the whole queue. */
export const HEAD: QueuePosition = ["-9223372036854775808", "-9223372036854775808"];

/** A runner's claims from this process: where the last one ended, and when one last walked the whole queue. */
interface Walk {
  after: QueuePosition;
  wholeAt: number;
}

/** While claims come, one of them walks the whole queue at least this often (see PostgresBroker.claim). */
const WHOLE_QUEUE_EVERY_MS = 100;

/** Runners whose claims this process remembers a position for (a worker has one at a time). */
const WALKS_KEPT = 64;

export class PostgresBroker implements Broker {
  readonly #db: PostgresConnection;
  readonly #listener: PostgresListener;
  readonly #walks = new Map<string, Walk>();
  readonly #wholeQueueEveryMs: number;

  constructor(db: PostgresConnection, listener: PostgresListener, wholeQueueEveryMs = WHOLE_QUEUE_EVERY_MS) {
    this.#db = db;
    this.#listener = listener;
    this.#wholeQueueEveryMs = wholeQueueEveryMs;
  }

  /** The claim statement, with parameters that claim nothing: for PostgresConnection.warm. */
  idleClaim(): { statement: Statement; values: unknown[] } {
    return { statement: CLAIM, values: this.#claimValues("", 0, Date.now(), STARTED_STATUS, HEAD) };
  }

  /**
   * A claim walks the queue from where this runner's last claim from this process ended, not from
   * the head: at the head are the invocations the runner holds, runs and is finishing (several
   * hundred in a busy worker), and the index entries of finished ones until a VACUUM removes them
   * (a walk steps over each; after rounds of 10,000 on a server without autovacuum, claims from
   * the head slowed a worker by a fifth). Whatever it steps over was in flight, finished or locked
   * by another claim, and an invocation queued again (a retry, a recovery) draws a new position
   * after it. What can still become claimable behind the position is an invocation whose position
   * is older than the ones claimed: registered with an earlier ready time (a host whose clock is
   * behind, a time in the past), committed after a later one (concurrent registrations), or left by
   * a claim of another process that rolled back. So a claim walks the whole queue when the last
   * such walk is `wholeQueueEveryMs` old, and a claim from the position that comes back short goes
   * on from the head: a claim that comes back short has seen the whole queue.
   */
  async claim(runnerId: string, max: number, now: number, options: ClaimOptions = {}): Promise<ClaimedInvocation[]> {
    if (max <= 0) return [];
    const ends = options.start ? STARTED_STATUS : CLAIMED_STATUS;
    const walk = this.#walks.get(runnerId);
    if (walk === undefined || performance.now() - walk.wholeAt >= this.#wholeQueueEveryMs) {
      return this.#claimFrom(runnerId, max, now, ends, HEAD, performance.now());
    }
    const claimed = await this.#claimFrom(runnerId, max, now, ends, walk.after, walk.wholeAt);
    if (claimed.length === max) return claimed;
    return claimed.concat(await this.#claimFrom(runnerId, max - claimed.length, now, ends, HEAD, performance.now()));
  }

  /** One claim statement, walking from `after`; remembers where it ended. */
  async #claimFrom(
    runnerId: string,
    max: number,
    now: number,
    ends: Status,
    after: QueuePosition,
    wholeAt: number,
  ): Promise<ClaimedInvocation[]> {
    const rows = await this.#db.query<ClaimedRow>(CLAIM, this.#claimValues(runnerId, max, now, ends, after));
    const last = rows[rows.length - 1];
    const walk = this.#walks.get(runnerId);
    // Further along than the runner's position already is: a walk from the head ends before it
    // when claims from the position took what lies between.
    const further = last !== undefined && (walk === undefined || isAfter(last, walk.after));
    if (further) setNewest(this.#walks, runnerId, { after: [String(last.queued_at), String(last.queued_seq)], wholeAt }, WALKS_KEPT);
    else if (after === HEAD) setNewest(this.#walks, runnerId, { after: walk?.after ?? HEAD, wholeAt }, WALKS_KEPT);
    return rows.map((row) => ({
      id: row.id,
      taskId: row.task_id,
      args: row.args,
      attempt: row.attempt,
      retries: row.retries,
      parentId: row.parent_id,
    }));
  }

  #claimValues(runnerId: string, max: number, now: number, ends: Status, after: QueuePosition): unknown[] {
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
      after[0],
      after[1],
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

/** Whether a claimed row's queue position is after `position`. */
function isAfter(row: ClaimedRow, position: QueuePosition): boolean {
  const readyAt = Number(position[0]);
  return row.queued_at !== readyAt ? row.queued_at > readyAt : row.queued_seq > Number(position[1]);
}
