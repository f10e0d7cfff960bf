/**
 * `node --import tsx bench/postgres-variants.ts [VARIANT ...] [--pairs N] [--rounds R]`: where
 * PostgreSQL's time goes in nenc's claim and finish. Each variant is a copy of the invocations
 * table with nenc's statements (simplified to the worker's pattern: claim 50 to start, then one
 * batch to SUCCESS) in a scratch schema, changed in one respect; each is measured on N invocations
 * (default 20,000), R rounds (default 3), and reported as pairs/s and as PostgreSQL's CPU per
 * claim + finish pair (every postgres process, from /proc), the median of the rounds. Compare the
 * variants of one run with each other only; the share of the table's updates that were HOT (wrote
 * no index entry) is reported too. A variant joins features with '+':
 *   jsonb-history  the history as a jsonb array built on the server (migration 2); by default it
 *                  is text the client builds, appended (migration 3 and later)
 *   no-history     no history written at all
 *   queue-index    the layout before migration 5: the queue an index of its own (ready_at set only
 *                  while queued, cleared by the claim) and a second index over what is in flight;
 *                  pair it with fillfactor-75 for the schema as it was
 *   no-in-flight   with queue-index: without the in-flight index (the one recovery reads)
 *   fillfactor-N   the table's fillfactor (nenc's is 40 since migration 5, 75 before)
 *   queue-table    the queue in a narrow table of its own (register inserts there too, a claim deletes
 *                  from it), so that the claim's update of the invocation changes no indexed column
 *                  and can be HOT
 *   position       each claim walks the queue from where that loop's last claim ended (nenc's claim
 *                  since 9bafd46, without its walks of the whole queue), not from the head
 *   all-hot        with position: the queue index over every invocation, final or not (no
 *                  predicate), and a finish that changes no indexed column, so that both the claim
 *                  and the finish are HOT updates; finished invocations stay in the index, behind
 *                  the positions claims walk from
 * By default (as-is) the schema as it is: one index over the invocations not final, which is the
 * queue and what is in flight, left as it is by the claim, so that the claim is a HOT update.
 * Default variants: as-is, the layout before migration 5, the same at fillfactor 40, jsonb-history,
 * no-history, fillfactor-75, queue-table.
 */
import pg from "pg";
import { HEAD } from "../src/backends/postgres/postgres-broker.js";
import { withUser } from "./peers/postgres-url.js";
import { cpuSecondsNamed, fmt, median, option } from "./support.js";

const argv = process.argv.slice(2);
const pairs = Number(option("pairs", "20000"));
const rounds = Number(option("rounds", "3"));
const positional = argv.filter((arg, i) => !arg.startsWith("--") && !argv[i - 1]?.startsWith("--"));
const variants = positional.length
  ? positional
  : ["as-is", "queue-index+fillfactor-75", "queue-index", "jsonb-history", "no-history", "fillfactor-75", "queue-table"];
const KNOWN =
  /^(as-is|jsonb-history|no-history|no-in-flight|queue-index|queue-table|finished-table|delete-only|position|all-hot|fillfactor-\d+)$/;
const url = withUser(process.env["NENC_POSTGRES_URL"] ?? "postgres://127.0.0.1:5432/test");
const BATCH = 50;
/** nenc's session settings (postgres-connection.ts). */
const SESSION = "-c plan_cache_mode=force_generic_plan -c enable_bitmapscan=off -c enable_seqscan=off";

function statements(variant: string) {
  const has = (feature: string) => variant.split("+").includes(feature);
  for (const feature of variant.split("+")) if (!KNOWN.test(feature)) throw new Error(`unknown variant feature ${JSON.stringify(feature)}`);
  const fillfactor = /fillfactor-(\d+)/.exec(variant)?.[1] ?? "40";
  const jsonb = has("jsonb-history");
  // An entry [status, at, attempt, runner]: as text, joined from pieces the client sends, as nenc's
  // statements do (postgres-history.ts); as jsonb, built on the server as migration 2 did.
  const entry = ([status, attempt]: [string, string]) =>
    jsonb
      ? `jsonb_build_array(jsonb_build_array('${status}'::text, $3::bigint, ${attempt}, $2::text))`
      : `',["${status}",' || $3::bigint || ',' || ${attempt} || ',"r"]'`;
  const append = (...entries: [string, string][]) =>
    has("no-history") ? "" : `, history = i.history || ${entries.map(entry).join(" || ")}`;
  const hot = !has("queue-index");
  if (has("no-in-flight") && hot && !has("queue-table")) {
    throw new Error("no-in-flight goes with queue-index or queue-table (as is, the queue is the in-flight index)");
  }
  const queueTable = has("queue-table");
  const position = has("position") || has("all-hot");
  const allHot = has("all-hot");
  if (allHot && (queueTable || !hot)) throw new Error("all-hot goes with the layout as it is (one queue index, HOT claims)");
  // The finish moves the row out of the invocations table (a delete, which writes no index entry)
  // into an append-only table of finished invocations, or (delete-only) drops it, as
  // graphile-worker does with a completed job.
  const finishedTable = has("finished-table");
  const deleteOnly = has("delete-only");
  const moves = finishedTable || deleteOnly;
  const schema = `
    DROP SCHEMA IF EXISTS nenc_variants CASCADE; CREATE SCHEMA nenc_variants; CREATE SEQUENCE nenc_variants.seq;
    CREATE TABLE nenc_variants.invocations (app_id text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, task_id text NOT NULL, call_id text NOT NULL,
      args text NOT NULL, status text NOT NULL, attempt integer NOT NULL DEFAULT 0, owner text, retries integer NOT NULL DEFAULT 0,
      ready_at bigint, seq bigint NOT NULL, created_seq bigint NOT NULL, parent_id text, result text, error text,
      created_at bigint NOT NULL, updated_at bigint NOT NULL, history ${jsonb ? "jsonb" : "text"} NOT NULL,
      final boolean NOT NULL DEFAULT false, PRIMARY KEY (app_id, id)) WITH (fillfactor = ${fillfactor});
    ${
      queueTable
        ? `CREATE TABLE nenc_variants.queue (app_id text COLLATE "C" NOT NULL, ready_at bigint NOT NULL, seq bigint NOT NULL,
             id text COLLATE "C" NOT NULL, PRIMARY KEY (app_id, ready_at, seq));`
        : `CREATE INDEX ON nenc_variants.invocations (app_id, ready_at, seq) ${moves || allHot ? "" : `WHERE ${hot ? "NOT final" : "ready_at IS NOT NULL"}`};`
    }
    ${
      finishedTable
        ? `CREATE TABLE nenc_variants.finished (LIKE nenc_variants.invocations INCLUDING DEFAULTS, PRIMARY KEY (app_id, id));`
        : ""
    }
    ${has("no-in-flight") || (hot && !queueTable) ? "" : "CREATE INDEX ON nenc_variants.invocations (app_id) WHERE NOT final;"}
    CREATE TABLE nenc_variants.runners (app_id text NOT NULL, id text NOT NULL, dead_at bigint, stopped_at bigint, PRIMARY KEY (app_id, id));
    INSERT INTO nenc_variants.runners VALUES ('a', 'r', NULL, NULL);`;
  const first = jsonb
    ? "jsonb_build_array(jsonb_build_array('REGISTERED', $2::bigint, 0, NULL))"
    : `'["REGISTERED",' || $2::bigint || ',0,null]'`;
  const insert = `
    INSERT INTO nenc_variants.invocations (app_id, id, task_id, call_id, args, status, created_at, updated_at, ready_at, seq, created_seq, history)
    SELECT 'a', r.id, 'noop', r.id, '[1]', 'REGISTERED', $2, $2, $2, s, s, ${first}
    FROM (SELECT id, nextval('nenc_variants.seq') AS s FROM unnest($1::text[]) AS id) r`;
  const register = queueTable
    ? `WITH created AS (${insert} RETURNING id, ready_at, seq)
       INSERT INTO nenc_variants.queue (app_id, ready_at, seq, id) SELECT 'a', ready_at, seq, id FROM created`
    : insert;
  const claim = queueTable
    ? `
    WITH runner AS (
      SELECT 1 FROM nenc_variants.runners WHERE app_id = $1 AND id = $2 AND dead_at IS NULL AND stopped_at IS NULL FOR SHARE
    ), picked AS (
      DELETE FROM nenc_variants.queue q WHERE q.ctid IN (
        SELECT ctid FROM nenc_variants.queue WHERE app_id = $1 AND ready_at <= $3 AND EXISTS (SELECT 1 FROM runner)
        ORDER BY ready_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED)
      RETURNING q.id, q.ready_at, q.seq
    ), claimed AS (
      UPDATE nenc_variants.invocations i SET status = 'RUNNING', owner = $2, attempt = i.attempt + 1, updated_at = $3
        ${append(["PENDING", "(i.attempt + 1)"], ["RUNNING", "(i.attempt + 1)"])}
      FROM picked p WHERE i.app_id = $1 AND i.id = p.id
      RETURNING i.id, i.attempt, p.ready_at AS queued_at, p.seq AS queued_seq
    )
    SELECT id, attempt FROM claimed ORDER BY queued_at, queued_seq`
    : `
    WITH runner AS (
      SELECT 1 FROM nenc_variants.runners WHERE app_id = $1 AND id = $2 AND dead_at IS NULL AND stopped_at IS NULL FOR SHARE
    ), picked AS (
      SELECT i.ctid, i.id, i.ready_at, i.seq FROM nenc_variants.invocations i
      WHERE i.app_id = $1 AND i.ready_at <= $3 ${hot ? "AND NOT i.final" : ""} AND i.status = ANY('{REGISTERED,RETRY,REROUTED}'::text[])
        ${position ? "AND (i.ready_at, i.seq) > ($5::bigint, $6::bigint)" : ""}
        AND EXISTS (SELECT 1 FROM runner)
      ORDER BY i.ready_at, i.seq LIMIT $4 FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE nenc_variants.invocations i SET status = 'RUNNING', owner = $2, attempt = i.attempt + 1, ${hot ? "" : "ready_at = NULL,"} updated_at = $3
        ${append(["PENDING", "(i.attempt + 1)"], ["RUNNING", "(i.attempt + 1)"])}
      ${
        // As nenc's claim: the picked rows as one list of ctids, in one TID scan (a TID scan asks the
        // kernel for the table's length each time it starts). Where the claim clears ready_at, the
        // queue position comes from the pick, joined by ctid (a TID scan per row).
        hot
          ? "WHERE i.ctid = ANY(ARRAY(SELECT p.ctid FROM picked p)) RETURNING i.id, i.attempt, i.ready_at AS queued_at, i.seq AS queued_seq"
          : "FROM picked p WHERE i.ctid = p.ctid RETURNING i.id, i.attempt, p.ready_at AS queued_at, p.seq AS queued_seq"
      }
    )
    SELECT id, attempt, queued_at::text, queued_seq::text FROM claimed ORDER BY queued_at, queued_seq`;
  const gone = `
    DELETE FROM nenc_variants.invocations i USING unnest($4::text[], $5::integer[]) AS r(id, attempt)
    WHERE i.app_id = $1 AND i.id = r.id AND i.status = 'RUNNING' AND i.attempt = r.attempt AND i.owner = $2 AND $3::bigint IS NOT NULL`;
  const moved = `
    WITH gone AS (${gone} RETURNING i.*)
    INSERT INTO nenc_variants.finished (app_id, id, task_id, call_id, args, status, attempt, owner, retries, ready_at, seq, created_seq,
      parent_id, result, error, created_at, updated_at, history, final)
    SELECT app_id, id, task_id, call_id, args, 'SUCCESS', attempt, owner, retries, NULL, seq, created_seq, parent_id, 'null', error,
      created_at, $3, history${has("no-history") ? "" : ` || ',["SUCCESS",' || $3::bigint || ',' || attempt || ',"r"]'`}, true
    FROM gone`;
  const finish = deleteOnly
    ? gone
    : finishedTable
      ? moved
      : `
    UPDATE nenc_variants.invocations i SET status = 'SUCCESS', updated_at = $3, final = true, result = 'null'
      ${append(["SUCCESS", "r.attempt"])}
    FROM unnest($4::text[], $5::integer[]) AS r(id, attempt)
    WHERE i.app_id = $1 AND i.id = r.id AND i.status = 'RUNNING' AND i.attempt = r.attempt AND i.owner = $2`;
  return { schema, register, claim, finish, position };
}

interface Measured {
  perS: number;
  serverUs: number;
  /** Share of the invocations table's updates that were HOT (no index entry written). */
  hotPct: number;
}

async function measure(variant: string): Promise<Measured> {
  const sql = statements(variant);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const pool = new pg.Pool({ connectionString: url, max: 2, options: SESSION });
  let poolEnded = false;
  try {
    await admin.query(sql.schema);
    const now = Date.now();
    const ids = Array.from({ length: pairs }, (_, i) => `inv-${String(i).padStart(8, "0")}-${Math.random().toString(36).slice(2, 12)}`);
    for (let i = 0; i < pairs; i += 1000) await pool.query({ name: "register", text: sql.register, values: [ids.slice(i, i + 1000), now] });
    await admin.query("VACUUM ANALYZE nenc_variants.invocations");
    const started = performance.now();
    const cpuBefore = cpuSecondsNamed("postgres");
    // Two loops, as a worker has a claim and a batch of outcomes in flight at once.
    const loop = async () => {
      let after: readonly string[] = HEAD;
      for (;;) {
        const claimed = await pool.query<{ id: string; attempt: number; queued_at: string; queued_seq: string }>({
          name: "claim",
          text: sql.claim,
          values: ["a", "r", Date.now(), BATCH, ...(sql.position ? after : [])],
        });
        if (claimed.rows.length === 0) {
          // From a position, the other loop may hold what lies behind it: once more from the head.
          if (sql.position && after !== HEAD) {
            after = HEAD;
            continue;
          }
          return;
        }
        const last = claimed.rows[claimed.rows.length - 1]!;
        after = [last.queued_at, last.queued_seq];
        const ids = claimed.rows.map((row) => row.id);
        const attempts = claimed.rows.map((row) => row.attempt);
        await pool.query({ name: "finish", text: sql.finish, values: ["a", "r", Date.now(), ids, attempts] });
      }
    };
    await Promise.all([loop(), loop()]);
    const seconds = (performance.now() - started) / 1000;
    const unfinished = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM nenc_variants.invocations WHERE NOT final");
    if (variant.includes("finished-table")) {
      const finished = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM nenc_variants.finished");
      if (finished.rows[0]!.n !== pairs) throw new Error(`${variant}: ${finished.rows[0]!.n} of ${pairs} invocations finished`);
    }
    if (unfinished.rows[0]!.n !== 0) throw new Error(`${variant}: ${unfinished.rows[0]!.n} invocations left unfinished`);
    const serverUs = ((cpuSecondsNamed("postgres") - cpuBefore) * 1e6) / pairs;
    // Sessions report their counts when they go idle, at most a second late.
    await pool.end();
    poolEnded = true;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const updates = await admin.query<{ hot: number }>(
      `SELECT 100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1) AS hot FROM pg_stat_user_tables
       WHERE schemaname = 'nenc_variants' AND relname = 'invocations'`,
    );
    return { perS: pairs / seconds, serverUs, hotPct: Number(updates.rows[0]?.hot ?? 0) };
  } finally {
    if (!poolEnded) await pool.end();
    await admin.query("DROP SCHEMA IF EXISTS nenc_variants CASCADE");
    await admin.end();
  }
}

const results = new Map<string, Measured[]>(variants.map((v) => [v, []]));
for (let round = 1; round <= rounds; round++) {
  for (const variant of variants) results.get(variant)!.push(await measure(variant));
}
console.log(`\n${fmt(pairs)} claim + finish pairs of ${BATCH}, two loops, median of ${rounds} rounds (variants interleaved)\n`);
console.log("| variant | pairs/s | PostgreSQL CPU per pair (µs) | HOT updates (%) |\n| --- | ---: | ---: | ---: |");
for (const [variant, runs] of results) {
  const of = (get: (r: Measured) => number, digits = 0) => fmt(median(runs.map(get)), digits);
  console.log(`| ${variant} | ${of((r) => r.perS)} | ${of((r) => r.serverUs, 1)} | ${of((r) => r.hotPct)} |`);
}
