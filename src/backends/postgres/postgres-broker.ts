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
 * The answer is one text value (see parseClaimed): a row per invocation, each a column, cost the
 * worker about 1.9 µs per invocation to parse (a message per row, a string per column, an object
 * per row), three times what one value split by the lengths it states costs.
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
    SELECT string_agg(
        length(id) || ' ' || length(task_id) || ' ' || length(args) || ' ' || coalesce(length(parent_id), -1) || ' '
          || attempt || ' ' || retries || ' ' || row::text || ':' || id || task_id || args || coalesce(parent_id, ''),
        '' ORDER BY queued_at, queued_seq) AS claimed
    FROM claimed`,
};

const QUEUE_LENGTH = `
  SELECT count(*) AS n FROM nenc.invocations
  WHERE app_id = $1 AND ready_at <= $2 AND NOT final AND status = ANY($3::text[])`;

/** What a claim answered: the invocations, in queue order, and the ctid each one's row is at now. */
interface Claimed {
  readonly invocations: ClaimedInvocation[];
  readonly rows: string[];
}

/**
 * The claim's answer: per invocation, a header of the lengths of its id, task id, arguments and
 * parent id (-1: none), its attempt, retries and row's ctid, space-separated and ended by ':', then
 * those four texts one after the other. Lengths are in characters, which are a JavaScript string's
 * code units unless a text holds characters beyond the Basic Multilingual Plane: then the answer is
 * read by code points instead.
 */
export function parseClaimed(answer: string | null): Claimed {
  const claimed: Claimed = { invocations: [], rows: [] };
  if (!answer) return claimed;
  const wide = /[\uD800-\uDFFF]/.test(answer);
  // Read as an array of code points only when it has to be: a string's slices are cheaper.
  const text: string | string[] = wide ? Array.from(answer) : answer;
  const take = (from: number, to: number) => (typeof text === "string" ? text.slice(from, to) : text.slice(from, to).join(""));
  for (let at = 0; at < text.length;) {
    const colon = text.indexOf(":", at);
    const header = colon < 0 ? [] : take(at, colon).split(" ");
    const id = Number(header[0]);
    const task = Number(header[1]);
    const args = Number(header[2]);
    const parent = Number(header[3]);
    const attempt = Number(header[4]);
    const retries = Number(header[5]);
    if (header.length !== 7 || ![id, task, args, parent, attempt, retries].every(Number.isInteger)) {
      throw new Error(`a claim answered what nenc cannot read, at character ${at}: ${JSON.stringify(take(at, at + 80))}`);
    }
    const idAt = colon + 1;
    const taskAt = idAt + id;
    const argsAt = taskAt + task;
    const parentAt = argsAt + args;
    at = parentAt + Math.max(parent, 0);
    claimed.invocations.push({
      id: take(idAt, taskAt),
      taskId: take(taskAt, argsAt),
      args: take(argsAt, parentAt),
      attempt,
      retries,
      parentId: parent < 0 ? null : take(parentAt, at),
    });
    claimed.rows.push(header[6]!);
  }
  return claimed;
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
    const [answer] = await this.#db.query<{ claimed: string | null }>(
      CLAIM,
      this.#claimValues(runnerId, max, now, options.start ? STARTED_STATUS : CLAIMED_STATUS),
    );
    const { invocations, rows } = parseClaimed(answer?.claimed ?? null);
    for (let i = 0; i < invocations.length; i++) this.#hints.remember(invocations[i]!.id, rows[i]!);
    return invocations;
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
