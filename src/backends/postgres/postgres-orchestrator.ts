import { isFinal, STATUS_TABLE } from "../../core/status.js";
import type { TransitionRequest } from "../../core/transition.js";
import type { Orchestrator } from "../../ports/backend.js";
import type { NewInvocation, RunnerInfo, RunnerRecord } from "../../ports/records.js";
import type { PostgresConnection, Query, Statement } from "./postgres-connection.js";
import { arrayLiteral } from "./postgres-arrays.js";
import { entryRunner, firstEntryHead } from "./postgres-history.js";
import type { PostgresSession } from "./postgres-session.js";

/** The status an invocation enters when it is created (it is claimable from then on). */
const REGISTERED = "REGISTERED";

/**
 * Registration of a batch. $1 is the app, $2 the status, $3 the head of the first history entry;
 * then the ids, call keys, arguments and creation times as arrays. In the usual batch (`uniform`:
 * every invocation of one task, with one parent, ready when made, as parallelize() and invoke()
 * make them) the task ($8) and the parent ($9) go once and the ready time is the creation time;
 * otherwise tasks, parents and ready times go as arrays too ($8-$10). Four arrays instead of seven:
 * less for the client to build and send, and for the server to parse (`npm run
 * bench:postgres-client`, see BENCHMARKS.md).
 */
function registerStatement(uniform: boolean): { readonly name: string; readonly text: string } {
  const [arrays, names, task, parent, readyAt] = uniform
    ? ["", "", "$8::text", "$9::text", "n.created_at"]
    : [", $8::text[], $9::text[], $10::bigint[]", ", task_id, parent_id, ready_at", "n.task_id", "n.parent_id", "n.ready_at"];
  return {
    name: uniform ? "nenc_register_uniform" : "nenc_register",
    text: `
    WITH created AS (
      INSERT INTO nenc.invocations (app_id, id, task_id, call_id, args, status, parent_id, created_at, updated_at,
                                    ready_at, seq, created_seq, history)
      SELECT $1, n.id, ${task}, n.call_id, n.args, $2::text, ${parent}, n.created_at, n.created_at, ${readyAt}, n.s, n.s,
             $3::text || n.created_at || ',0,null]'
      FROM (SELECT r.*, nextval('nenc.seq') AS s
            FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[]${arrays})
                 WITH ORDINALITY AS r(id, call_id, args, created_at${names}, ord)
            ORDER BY r.ord) n
      RETURNING 1
    )
    SELECT count(*) AS n FROM created`,
  };
}

const REGISTER = registerStatement(false);
const REGISTER_UNIFORM = registerStatement(true);

/** Whether every invocation of the batch has the first one's task and parent, and is ready when made. */
function isUniform(invocations: readonly NewInvocation[]): boolean {
  const { taskId, parentId } = invocations[0]!;
  for (const inv of invocations) if (inv.taskId !== taskId || inv.parentId !== parentId || inv.readyAt !== inv.createdAt) return false;
  return true;
}

/** An element of an array parameter, or a value sent once. */
type Value = string | number | boolean | null | undefined;

/**
 * The columns of a transition batch, in parameter order. Each is sent as an array with an element
 * per request or, when every request of the batch has the same value (a worker's final writes
 * share their expected status, owner, target, result...), as that value once: the batch's shape
 * says which (see transitionStatement). The ids always go as arrays (one request per invocation
 * in a statement), and so do the times, which nearly always differ within a batch: that keeps a
 * worker's final writes to one shape, so that each connection plans one statement for them (a plan
 * takes 1.5-3 ms of the server, and a worker starts with a few connections at once).
 * The history entry is not a column: the server joins it from the status, time, attempt and
 * runner (see transitionStatement), so a batch by one runner sends its runner once.
 */
interface TransitionColumn {
  readonly name: string;
  readonly type: "text" | "integer" | "bigint" | "boolean";
  /** The request's value; equal values (===) across a batch are sent once. */
  readonly value: (r: TransitionRequest) => Value;
  /** Always sent as an array. */
  readonly varies?: true;
}

const TRANSITION_COLUMNS: readonly TransitionColumn[] = [
  { name: "id", type: "text", value: (r) => r.id, varies: true },
  { name: "expect_status", type: "text", value: (r) => r.expect.status },
  { name: "expect_attempt", type: "integer", value: (r) => r.expect.attempt },
  { name: "check_owner", type: "boolean", value: (r) => r.expect.owner !== undefined },
  { name: "expect_owner", type: "text", value: (r) => r.expect.owner ?? null },
  { name: "to_status", type: "text", value: (r) => r.to },
  { name: "owner", type: "text", value: (r) => r.owner },
  { name: "attempt", type: "integer", value: (r) => r.attempt },
  { name: "ready_at", type: "bigint", value: (r) => r.readyAt },
  { name: "at", type: "bigint", value: (r) => r.at, varies: true },
  { name: "runner", type: "text", value: (r) => entryRunner(r.by) },
  { name: "result", type: "text", value: (r) => r.result ?? null },
  { name: "error", type: "text", value: (r) => r.error ?? null },
  { name: "retries", type: "integer", value: (r) => r.retries ?? null },
  { name: "queued", type: "boolean", value: (r) => STATUS_TABLE[r.to].claimable === true },
  { name: "final", type: "boolean", value: (r) => isFinal(r.to) },
];

/**
 * A batch's shape: which columns vary within it (sent as arrays), as a string of 0 and 1 per
 * column of TRANSITION_COLUMNS. The columns marked `varies` always do.
 */
export type TransitionShape = string;

/** The shape of a batch in which the named columns vary (besides those that always do). */
export function transitionShape(varying: readonly string[]): TransitionShape {
  for (const name of varying) if (!TRANSITION_COLUMNS.some((c) => c.name === name)) throw new Error(`no transition column ${name}`);
  return TRANSITION_COLUMNS.map((c) => (c.varies || varying.includes(c.name) ? "1" : "0")).join("");
}

const transitionStatements = new Map<TransitionShape, { readonly name: string; readonly text: string }>();

/**
 * Compare-and-set of a batch of requests, none two on the same invocation: one statement, made
 * for the batch's shape (and kept, a prepared statement per shape and connection: a worker's final
 * writes come in one shape). $1 is the app; then an array per column that varies, in
 * column order ($2 the ids); then a value per column that does not. Unnesting only the columns
 * that vary took a sixth off the server's time per request (16 arrays, most of them empty, each
 * read through a COALESCE with its single value, were 3 of 24 µs).
 * Each request applies only where the stored status, attempt (and owner, when it is checked) are
 * what it expects; the new values were all computed in core. Queued targets draw a new queue
 * position; other targets keep theirs (see the claim), so that only a queued or a final target
 * changes an indexed column.
 * Each request finds its invocation's row by id, through the primary key (`found`: a LATERAL
 * subquery whose LIMIT keeps the planner from pulling it up, so the requests are the outer side
 * whatever the table's statistics say); the update goes to the very row version found, by its ctid.
 * Joined plainly by id, a table whose statistics said it was nearly empty (vacuumed between bursts)
 * was read whole for every batch, by a plan the connection kept. Reading through the index is also
 * what makes room for the new version: an index fetch prunes the page's dead versions (those the
 * claim left), a fetch by ctid does not. Finding the row at the ctid the claim answered instead (a
 * hint kept per invocation, until the change that removed it) put more new versions on other pages
 * and grew the table: a drain of 20,000 logged 13,500 updates across two pages against 9,600, and
 * the server spent about a quarter more CPU per job (BENCHMARKS.md). A row that another session
 * changed after this statement's snapshot is not at the ctid found any more: it is `moved`, and
 * transition() runs those requests again, in a statement that sees the change (the change may
 * also have made them stale: they are judged again).
 * Each applied request appends its history entry, which the server joins from the target status
 * (a name from the status table: plain letters, JSON without escaping), the time, the attempt and
 * the runner's JSON text: a worker's batch sends its runner once instead of a whole entry per
 * request, which was the larger part of what a batch of final writes sent.
 * Only new work (a queued status) and an outcome (a final one) wake the app's listeners (after the
 * commit, see PostgresConnection.wake): no runner or waiter acts on the steps between, and every
 * NOTIFY costs each listening process a round of work.
 * It answers with the ordinals of the requests refused and of those moved, almost always none: an
 * ordinal per request applied was a measurable share of a worker's time to parse.
 */
export function transitionStatement(shape: TransitionShape): { readonly name: string; readonly text: string } {
  let statement = transitionStatements.get(shape);
  if (statement) return statement;
  if (
    shape.length !== TRANSITION_COLUMNS.length ||
    TRANSITION_COLUMNS.some((c, i) => (c.varies && shape[i] !== "1") || !/[01]/.test(shape[i]!))
  ) {
    throw new Error(`not a transition batch's shape: ${shape}`);
  }
  const varying = TRANSITION_COLUMNS.filter((_, c) => shape[c] === "1");
  const once = TRANSITION_COLUMNS.filter((_, c) => shape[c] === "0");
  const source = (column: TransitionColumn) =>
    shape[TRANSITION_COLUMNS.indexOf(column)] === "1"
      ? `r.${column.name}`
      : `$${2 + varying.length + once.indexOf(column)}::${column.type} AS ${column.name}`;
  const expected = `i.app_id = $1 AND i.id = r.id AND i.status = r.expect_status AND i.attempt = r.expect_attempt
            AND (NOT r.check_owner OR i.owner IS NOT DISTINCT FROM r.expect_owner)`;
  const text = `
    WITH request AS (
      SELECT r.ord, ${TRANSITION_COLUMNS.map(source).join(", ")}
      FROM unnest(${varying.map((c, i) => `$${2 + i}::${c.type}[]`).join(", ")})
        WITH ORDINALITY AS r(${varying.map((c) => c.name).join(", ")}, ord)
    ), found AS MATERIALIZED (
      SELECT r.ord, r.to_status, r.owner, r.attempt, r.at, r.final, r.queued, r.ready_at, r.result, r.error, r.retries, r.runner, f.row
      FROM request r CROSS JOIN LATERAL (
        SELECT i.ctid AS row FROM nenc.invocations i WHERE ${expected}
        LIMIT 1
      ) f
    ), applied AS (
      UPDATE nenc.invocations i SET
        status = r.to_status, owner = r.owner, attempt = r.attempt, updated_at = r.at, final = r.final,
        ready_at = CASE WHEN r.queued THEN r.ready_at ELSE i.ready_at END,
        seq = CASE WHEN r.queued THEN nextval('nenc.seq') ELSE i.seq END,
        result = COALESCE(r.result, i.result), error = COALESCE(r.error, i.error), retries = COALESCE(r.retries, i.retries),
        history = i.history || ',["' || r.to_status || '",' || r.at || ',' || r.attempt || ',' || r.runner || ']'
      FROM found r
      WHERE i.ctid = r.row
      RETURNING r.ord, r.queued OR r.final AS wake
    )
    SELECT ARRAY(SELECT o FROM generate_series(1, cardinality($2::text[])) o WHERE o NOT IN (SELECT ord FROM found)) AS refused,
      ARRAY(SELECT ord FROM found WHERE ord NOT IN (SELECT ord FROM applied)) AS moved,
      EXISTS (SELECT 1 FROM applied WHERE wake) AS wake`;
  statement = { name: `nenc_transition_${parseInt(shape, 2).toString(36)}`, text };
  transitionStatements.set(shape, statement);
  return statement;
}

const REGISTER_RUNNER = `
  INSERT INTO nenc.runners (app_id, id, kind, host_id, hostname, pid, pid_start, started_at, heartbeat_at, lock_key, watched)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (app_id, id) DO UPDATE SET kind = EXCLUDED.kind, host_id = EXCLUDED.host_id, hostname = EXCLUDED.hostname,
    pid = EXCLUDED.pid, pid_start = EXCLUDED.pid_start, started_at = EXCLUDED.started_at,
    heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL, dead_at = NULL, watched = EXCLUDED.watched`;

const HEARTBEAT = {
  name: "nenc_heartbeat",
  text: `
    UPDATE nenc.runners SET heartbeat_at = GREATEST(heartbeat_at, $3), watched = watched OR $4
    WHERE app_id = $1 AND id = $2 AND dead_at IS NULL AND stopped_at IS NULL
    RETURNING 1`,
};

const RUNNER_COLUMNS = `id, kind, host_id, hostname, pid, pid_start, started_at, heartbeat_at, stopped_at, dead_at`;

/**
 * Runners that may still be connected: those holding their lock, and those that never took one
 * (only a heartbeat timeout can tell about them). Null for a short while after the server
 * started, when live runners may not have taken their locks again yet.
 */
const CONNECTED_RUNNERS = `
  WITH held AS MATERIALIZED (
    SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  )
  SELECT CASE WHEN now() - pg_postmaster_start_time() < make_interval(secs => $2::float8 / 1000) THEN NULL
    ELSE ARRAY(SELECT id FROM nenc.runners WHERE app_id = $1 AND (NOT watched OR lock_key IN (SELECT key FROM held))) END AS ids`;

const ACQUIRE_LEASE = `
  INSERT INTO nenc.leases AS l (app_id, name, holder, expires_at) VALUES ($1, $2, $3, $4::bigint + $5::bigint)
  ON CONFLICT (app_id, name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
  WHERE l.holder = $3 OR l.holder = $6::text OR l.expires_at <= $4::bigint
  RETURNING 1`;

interface TransitionRow {
  /** Ordinals of the requests whose expectation did not hold: almost always none, so the reply stays small. */
  refused: number[];
  /** Ordinals of the requests whose row another session changed meanwhile: to be run again. */
  moved: number[];
  wake: boolean;
}

interface RunnerRow {
  id: string;
  kind: string;
  host_id: string;
  hostname: string;
  pid: number;
  pid_start: string | null;
  started_at: number;
  heartbeat_at: number;
  stopped_at: number | null;
  dead_at: number | null;
}

export class PostgresOrchestrator implements Orchestrator {
  readonly #db: PostgresConnection;
  readonly #session: PostgresSession;
  readonly #connectionGraceMs: number;

  constructor(db: PostgresConnection, session: PostgresSession, connectionGraceMs: number) {
    this.#db = db;
    this.#session = session;
    this.#connectionGraceMs = connectionGraceMs;
  }

  async register(invocations: readonly NewInvocation[]): Promise<void> {
    if (invocations.length === 0) return;
    const column = <K extends keyof NewInvocation>(key: K) => arrayLiteral(invocations.map((inv) => inv[key]));
    const values = [
      this.#db.appId,
      REGISTERED,
      firstEntryHead(REGISTERED),
      column("id"),
      column("callId"),
      column("args"),
      column("createdAt"),
    ];
    try {
      if (isUniform(invocations)) {
        await this.#db.query(REGISTER_UNIFORM, [...values, invocations[0]!.taskId, invocations[0]!.parentId]);
      } else {
        await this.#db.query(REGISTER, [...values, column("taskId"), column("parentId"), column("readyAt")]);
      }
      this.#db.wake();
    } catch (error) {
      if ((error as { code?: string }).code === "23505") {
        const id = /\(app_id, id\)=\([^,]*, ([^)]*)\)/.exec((error as { detail?: string }).detail ?? "")?.[1] ?? "(one of the batch)";
        throw new Error(`invocation ${id} already exists`);
      }
      throw error;
    }
  }

  async transition(requests: readonly TransitionRequest[]): Promise<boolean[]> {
    if (requests.length === 0) return [];
    const rounds = inRounds(requests);
    const applied = new Array<boolean>(requests.length).fill(false);
    let wake = false;
    const run = async (query: Query, round: readonly number[]) => {
      // Requests whose row moved run again, until none did (each time, another session changed it).
      for (let left = round; left.length > 0;) {
        const [row] = await query<TransitionRow>(...this.#statement(requests, left));
        if (!row) throw new Error("a transition batch answered nothing");
        for (const index of left) applied[index] = true;
        for (const ord of row.refused) applied[left[ord - 1]!] = false;
        if (row.wake) wake = true;
        left = row.moved.map((ord) => left[ord - 1]!);
      }
    };
    if (rounds.length === 1) {
      await run((statement, values) => this.#db.query(statement, values), rounds[0]!);
    } else {
      // Several requests on one invocation (a chain such as KILLED then REROUTED): one round per
      // position in the chains, in order, in one transaction, so each sees the previous ones.
      await this.#db.transaction(async (query) => {
        for (const round of rounds) await run(query, round);
      });
    }
    if (wake) this.#db.wake();
    return applied;
  }

  /** The statement of a worker's final writes, with parameters that change nothing: for PostgresConnection.warm. */
  idleFinalWrites(): { statement: Statement; values: unknown[] } {
    const [statement, values] = this.#statement([], []);
    return { statement, values };
  }

  /**
   * The statement for the requests of `round`, and its parameters: $1, an array per column that
   * varies, a value per column that does not. Once per batch on a worker's hottest path: a column
   * is compared across the batch before any array is made for it, and only the columns that vary
   * get one. The loops over the batch's requests are small functions of their own (roundRows,
   * uniformValue, columnArray): a loop of hundreds of requests inside this function made V8 compile
   * all of it, with everything it calls inlined, two or three times at each worker's start (50 ms
   * of its compiler's time in a drain of 10,000; see BENCHMARKS.md).
   */
  #statement(requests: readonly TransitionRequest[], round: readonly number[]): [{ name: string; text: string }, unknown[]] {
    const rows = roundRows(requests, round);
    const arrays: string[] = [];
    const singles: Value[] = [];
    let shape = "";
    for (const column of TRANSITION_COLUMNS) {
      const value = column.varies ? VARIES : uniformValue(column, rows);
      if (value !== VARIES) {
        shape += "0";
        singles.push(value);
      } else {
        shape += "1";
        arrays.push(columnArray(column, rows));
      }
    }
    return [transitionStatement(shape), [this.#db.appId, ...arrays, ...singles]];
  }

  /**
   * The registering process takes the runner's lock on its session connection at once, so that
   * it is watched from its first moment, before its heartbeat (maybe in a thread starting up) beats.
   */
  async registerRunner(info: RunnerInfo, now: number): Promise<void> {
    const holds = await this.#session.hold(info.id);
    await this.#db.query(REGISTER_RUNNER, [
      this.#db.appId,
      info.id,
      info.kind,
      info.hostId,
      info.hostname,
      info.pid,
      info.pidStart,
      info.startedAt,
      now,
      this.#session.keyOf(info.id),
      holds,
    ]);
  }

  /**
   * Beats through the session connection, taking the runner's lock there first unless another
   * connection of the runner's process holds it (the one that registered it). After a server
   * restart, whichever beats first takes it again.
   */
  async heartbeat(runnerId: string, now: number): Promise<boolean> {
    const holds = await this.#session.hold(runnerId);
    const rows = await this.#session.query(HEARTBEAT, [this.#db.appId, runnerId, now, holds]);
    if (rows.length === 0) await this.#session.release(runnerId);
    return rows.length > 0;
  }

  async retireRunners(runnerIds: readonly string[], how: "stopped" | "dead", now: number): Promise<string[]> {
    if (runnerIds.length === 0) return [];
    const column = how === "dead" ? "dead_at" : "stopped_at";
    const statement = `UPDATE nenc.runners SET ${column} = $3
      WHERE app_id = $1 AND id = ANY($2::text[]) AND dead_at IS NULL AND stopped_at IS NULL RETURNING id`;
    const rows = await this.#db.query<{ id: string }>(statement, [this.#db.appId, runnerIds, now]);
    for (const id of runnerIds) await this.#session.release(id);
    // In the order given, each once.
    const retired = new Set(rows.map((row) => row.id));
    return runnerIds.filter((id) => retired.delete(id));
  }

  async runners(): Promise<RunnerRecord[]> {
    const rows = await this.#db.query<RunnerRow>(`SELECT ${RUNNER_COLUMNS} FROM nenc.runners WHERE app_id = $1 ORDER BY started_at, id`, [
      this.#db.appId,
    ]);
    return rows.map(runnerRecord);
  }

  async connectedRunners(): Promise<Set<string> | null> {
    const [row] = await this.#db.query<{ ids: string[] | null }>(CONNECTED_RUNNERS, [this.#db.appId, this.#connectionGraceMs]);
    return row?.ids ? new Set(row.ids) : null;
  }

  async acquireLease(name: string, holder: string, now: number, ttlMs: number, replacing?: string): Promise<boolean> {
    const rows = await this.#db.query(ACQUIRE_LEASE, [this.#db.appId, name, holder, now, ttlMs, replacing ?? null]);
    return rows.length > 0;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#db.query("DELETE FROM nenc.leases WHERE app_id = $1 AND name = $2 AND holder = $3", [this.#db.appId, name, holder]);
  }
}

/** The requests of a round, in its order. */
function roundRows(requests: readonly TransitionRequest[], round: readonly number[]): TransitionRequest[] {
  const rows = new Array<TransitionRequest>(round.length);
  for (let k = 0; k < round.length; k++) rows[k] = requests[round[k]!]!;
  return rows;
}

/** What uniformValue answers for a column whose values differ within the batch. */
const VARIES = Symbol("varies");

/** The value every request of the batch has (===) in this column (undefined for no requests), or VARIES. */
function uniformValue(column: TransitionColumn, rows: readonly TransitionRequest[]): Value | typeof VARIES {
  if (rows.length === 0) return undefined;
  const first = column.value(rows[0]!);
  for (let k = 1; k < rows.length; k++) if (column.value(rows[k]!) !== first) return VARIES;
  return first;
}

/** A column's values for a batch as an array parameter's text. */
function columnArray(column: TransitionColumn, rows: readonly TransitionRequest[]): string {
  const values = new Array<Value>(rows.length);
  for (let k = 0; k < rows.length; k++) values[k] = column.value(rows[k]!);
  return arrayLiteral(values);
}

/**
 * Split a batch into rounds that can each be one statement: round k holds the k-th request on
 * each invocation, so requests on one invocation stay in order and no round touches a row twice.
 * Within a round, requests are sorted by id so that concurrent batches lock rows in one order.
 */
function inRounds(requests: readonly TransitionRequest[]): number[][] {
  const byId = (a: number, b: number) => {
    const x = requests[a]!.id;
    const y = requests[b]!.id;
    return x < y ? -1 : x > y ? 1 : a - b;
  };
  const order = requests.map((_, index) => index);
  // Almost always one request per invocation, often already in id order (a worker's final writes
  // come in the order it claimed, and ids grow with time): one round, sorted only if it is not.
  let sorted = true;
  let distinct = true;
  for (let i = 1; i < requests.length && distinct; i++) {
    const previous = requests[i - 1]!.id;
    const id = requests[i]!.id;
    if (id === previous) distinct = false;
    else if (id < previous) sorted = false;
  }
  if (distinct && sorted) return [order];
  if (distinct && new Set(requests.map((r) => r.id)).size === requests.length) return [order.sort(byId)];
  const rounds: number[][] = [];
  const seen = new Map<string, number>();
  requests.forEach((request, index) => {
    const position = seen.get(request.id) ?? 0;
    seen.set(request.id, position + 1);
    (rounds[position] ??= []).push(index);
  });
  for (const round of rounds) round.sort(byId);
  return rounds;
}

function runnerRecord(row: RunnerRow): RunnerRecord {
  return {
    id: row.id,
    kind: row.kind,
    hostId: row.host_id,
    hostname: row.hostname,
    pid: row.pid,
    pidStart: row.pid_start,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    stoppedAt: row.stopped_at,
    deadAt: row.dead_at,
  };
}
