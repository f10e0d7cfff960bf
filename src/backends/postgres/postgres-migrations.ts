import type { PoolClient } from "pg";
import { FINAL_STATUSES } from "../../core/status.js";

/**
 * The schema, as numbered steps applied once each, in order, in the schema `nenc` (every app on
 * the server shares these tables; every row carries its app_id). Append new steps; never edit one
 * that has shipped.
 *
 * Design notes:
 * - invocations.history is the status history inline (JSON entries [status, at, attempt, runner],
 *   comma-separated text since version 3): a transition rewrites the row anyway, so appending
 *   there costs no extra row, index entry or round trip.
 * - One partial index, on (app_id, ready_at, seq) over the invocations not final yet (since
 *   version 5), is both the queue and what recovery and the monitor look up in flight. ready_at and
 *   seq are set when an invocation is queued and left as they are while it is claimed and runs, so
 *   that the claim and every step until the final one change no indexed column: they are HOT
 *   updates, which write no index entry. A claim steps over the few in-flight rows at the head of
 *   the queue by their status. ready_at means something only while the status is claimable.
 * - fillfactor leaves room on each page for those HOT updates: a claim rewrites up to a batch of
 *   neighbouring rows at once, each a little longer (its history), and a page without room for all
 *   of them makes the rest ordinary updates.
 * - runners.lock_key is the session advisory lock a runner's heartbeat connection holds: when that
 *   connection closes (the process died), the lock is gone at once. `watched` says the runner did
 *   take it, so a runner whose first beat has not happened yet is not taken for dead.
 */
export const MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE SEQUENCE nenc.seq;
      CREATE TABLE nenc.invocations (
        app_id text NOT NULL,
        id text NOT NULL,
        task_id text NOT NULL,
        call_id text NOT NULL,
        args text NOT NULL,
        status text NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        owner text,
        retries integer NOT NULL DEFAULT 0,
        ready_at bigint,
        seq bigint NOT NULL,
        created_seq bigint NOT NULL,
        parent_id text,
        result text,
        error text,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        history jsonb NOT NULL,
        PRIMARY KEY (app_id, id)
      ) WITH (fillfactor = 75);
      CREATE INDEX invocations_queue ON nenc.invocations (app_id, ready_at, seq) WHERE ready_at IS NOT NULL;
      CREATE INDEX invocations_status ON nenc.invocations (app_id, status);
      CREATE TABLE nenc.logs (
        app_id text NOT NULL,
        invocation_id text NOT NULL,
        seq bigserial NOT NULL,
        attempt integer NOT NULL,
        runner_id text NOT NULL,
        at bigint NOT NULL,
        level text NOT NULL,
        message text NOT NULL,
        PRIMARY KEY (app_id, invocation_id, seq)
      );
      CREATE TABLE nenc.runners (
        app_id text NOT NULL,
        id text NOT NULL,
        kind text NOT NULL,
        host_id text NOT NULL,
        hostname text NOT NULL,
        pid integer NOT NULL,
        pid_start text,
        started_at bigint NOT NULL,
        heartbeat_at bigint NOT NULL,
        stopped_at bigint,
        dead_at bigint,
        lock_key bigint NOT NULL,
        watched boolean NOT NULL DEFAULT false,
        PRIMARY KEY (app_id, id)
      );
      CREATE TABLE nenc.leases (
        app_id text NOT NULL,
        name text NOT NULL,
        holder text NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (app_id, name)
      );
    `,
  },
  {
    // An index on status made every transition write an index entry (and no update HOT). What
    // recovery and the monitor look up by status are the invocations still in flight: index
    // those alone, by a flag that changes once, when an invocation becomes final.
    version: 2,
    sql: `
      ALTER TABLE nenc.invocations ADD COLUMN final boolean NOT NULL DEFAULT false;
      UPDATE nenc.invocations SET final = true WHERE status IN (${FINAL_STATUSES.map((s) => `'${s}'`).join(", ")});
      DROP INDEX nenc.invocations_status;
      CREATE INDEX invocations_in_flight ON nenc.invocations (app_id) WHERE NOT final;
    `,
  },
  {
    // The history as text: its JSON entries joined by commas, without the enclosing brackets, so
    // that recording one appends a string (a jsonb array is decoded and encoded again on every
    // append). bench/postgres-variants.ts measured 28 µs of server CPU per claim and finish with
    // jsonb, 26 as text, 22 with no history at all. Readers parse '[' || history || ']'.
    version: 3,
    sql: `
      ALTER TABLE nenc.invocations ALTER COLUMN history TYPE text USING substr(history::text, 2, length(history::text) - 2);
    `,
  },
  {
    // Keys compared byte by byte: every index on these tables starts with app_id, and the primary
    // keys go on with an id, compared under the database's collation until now. Outside the "C"
    // collation each comparison is a locale-aware strcoll (even C.UTF-8 on PostgreSQL 15), a
    // measurable share of every claim and transition; ids have no linguistic order to keep.
    version: 4,
    sql: `
      ALTER TABLE nenc.invocations ALTER COLUMN app_id TYPE text COLLATE "C", ALTER COLUMN id TYPE text COLLATE "C";
      ALTER TABLE nenc.logs ALTER COLUMN app_id TYPE text COLLATE "C", ALTER COLUMN invocation_id TYPE text COLLATE "C";
      ALTER TABLE nenc.runners ALTER COLUMN app_id TYPE text COLLATE "C", ALTER COLUMN id TYPE text COLLATE "C";
      ALTER TABLE nenc.leases ALTER COLUMN app_id TYPE text COLLATE "C", ALTER COLUMN name TYPE text COLLATE "C";
    `,
  },
  {
    // The queue and the in-flight index become one index that a claim does not change (see the
    // design notes above): a claim was an ordinary update, a new entry in the primary key and one
    // in the in-flight index per invocation. bench/postgres-variants.ts measured 36.5 µs of server
    // CPU per claim and finish as before, 27 with this at fillfactor 40 (every claim a HOT update),
    // 32 at 50 and 43.5 at 75. The fillfactor applies to pages filled from now on.
    version: 5,
    sql: `
      DROP INDEX nenc.invocations_queue;
      DROP INDEX nenc.invocations_in_flight;
      CREATE INDEX invocations_in_flight ON nenc.invocations (app_id, ready_at, seq) WHERE NOT final;
      ALTER TABLE nenc.invocations SET (fillfactor = 40);
    `,
  },
];

/** Key of the transaction advisory lock that lets one process at a time migrate. */
const MIGRATION_LOCK = "7242861550411939105";

/**
 * Bring the schema up to date. Cheap when it is (one read); otherwise under a transaction-level
 * advisory lock, so processes starting together on an empty server migrate once, in turn.
 */
export async function migrate(client: PoolClient): Promise<void> {
  const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
  if ((await appliedVersion(client)) >= latest) return;
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query("CREATE SCHEMA IF NOT EXISTS nenc");
    await client.query(
      "CREATE TABLE IF NOT EXISTS nenc.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const current = await appliedVersion(client);
    for (const step of MIGRATIONS) {
      if (step.version <= current) continue;
      await client.query(step.sql);
      await client.query("INSERT INTO nenc.migrations (version) VALUES ($1)", [step.version]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

async function appliedVersion(client: PoolClient): Promise<number> {
  const found = await client.query<{ exists: boolean }>("SELECT to_regclass('nenc.migrations') IS NOT NULL AS exists");
  if (!found.rows[0]?.exists) return 0;
  const rows = await client.query<{ version: number | null }>("SELECT max(version) AS version FROM nenc.migrations");
  return rows.rows[0]?.version ?? 0;
}
