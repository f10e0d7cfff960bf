import pg from "pg";
import { Nenc } from "../../src/index.js";
import { defineBenchTasks } from "./nenc-tasks.js";
import { SystemUnavailable, type BenchSystem, type RunSettings } from "./system.js";
import { spawnNencWorker, type WorkerChild } from "./worker-child.js";

/**
 * nenc on Redis or PostgreSQL, under an app id of its own (purged at the end). Enqueue with
 * parallelize(), single invocations with invoke(); the worker is `nenc worker --app
 * bench/peers/nenc-tasks.ts --concurrency N` (async runner), every other setting nenc's default.
 * On PostgreSQL nenc's tables outlive a run (the peers get a fresh schema each time), so they are
 * vacuumed and analyzed first, as autovacuum would do on a server where it is on. Completions are
 * counted there as graphile-worker's are: enqueued minus those not final yet (a walk of the small
 * in-flight index), since counting every finished row each poll grows with the table and loads
 * the server being measured. On Redis the app's status counts are one hash read.
 */
export function createNencSystem(run: RunSettings, kind: "redis" | "postgres"): BenchSystem {
  const env: Record<string, string> = {
    NENC_BACKEND: kind,
    NENC_APP_ID: `bench-peers-${run.runId}`,
    NENC_REDIS_URL: run.redisUrl,
    NENC_POSTGRES_URL: run.postgresUrl,
    NENC_LOG_TO_CONSOLE: "false",
  };
  let app: Nenc | undefined;
  let tasks: ReturnType<typeof defineBenchTasks> | undefined;
  let pool: pg.Pool | undefined;
  let enqueued = 0;
  const backend = () => app!.backend();
  return {
    name: `nenc-${kind}`,
    settings:
      `nenc (${kind}): async runner, concurrency ${run.concurrency}, parallelize() with the backend's batch size (default: ${kind === "redis" ? 100 : 1000}), other settings default` +
      (kind === "postgres" ? "; VACUUM ANALYZE of nenc's tables before the run" : ""),
    async open() {
      app = new Nenc({ env: { ...process.env, ...env }, configFile: null });
      if (kind === "postgres") {
        await vacuumNencTables(run.postgresUrl);
        pool = new pg.Pool({ connectionString: run.postgresUrl, max: 2 });
      }
      tasks = defineBenchTasks(app);
      try {
        // Its first statement creates nenc's tables on a server that has none yet, before the
        // completion count below reads them.
        await (await app.backend()).broker.queueLength(Date.now());
      } catch (error) {
        const message = (error as Error).message;
        await app.close().catch(() => undefined);
        app = undefined;
        if (/not available/i.test(message)) throw new SystemUnavailable(message);
        throw error;
      }
    },
    async enqueueNoops(from, count) {
      await tasks!.noop.parallelize(Array.from({ length: count }, (_, i) => [from + i] as [number]));
      enqueued += count;
    },
    async enqueueProbe(key) {
      await tasks!.probe.invoke(key);
      enqueued++;
    },
    async enqueueHolds(keys, ms) {
      await tasks!.hold.parallelize(keys.map((key) => [key, ms] as [string, number]));
      enqueued += keys.length;
    },
    async completedJobs() {
      if (!pool) return (await (await backend()).state.counts()).SUCCESS ?? 0;
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM nenc.invocations WHERE app_id = $1 AND NOT final", [
        env["NENC_APP_ID"],
      ]);
      return enqueued - (rows[0]?.n ?? 0);
    },
    startWorker(): WorkerChild {
      return spawnNencWorker("bench/peers/nenc-tasks.ts", env, ["--concurrency", String(run.concurrency)]);
    },
    async close() {
      await pool?.end();
      pool = undefined;
      if (!app) return;
      await (await backend()).state.purge();
      await app.close();
    },
  };
}

/** VACUUM ANALYZE nenc's tables, if they exist yet (they are created on first use). */
async function vacuumNencTables(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = 'nenc'",
    );
    for (const { name } of rows) await client.query(`VACUUM (ANALYZE) ${name}`);
  } finally {
    await client.end();
  }
}
