import pg from "pg";
import type { BenchJob } from "./report.js";
import { loadGraphile, type GraphileWorker } from "./graphile-package.js";
import type { BenchSystem, RunSettings } from "./system.js";
import { spawnPeerWorker, type WorkerChild } from "./worker-child.js";

type WorkerUtils = Awaited<ReturnType<GraphileWorker["makeWorkerUtils"]>>;

/**
 * graphile-worker in a schema of its own (dropped at the end). Two variants:
 *   default   graphile-worker 0.16.6 (the devDependency): concurrency N, maxPoolSize N + 1 (its docs
 *             warn when the pool is smaller than the concurrency), LISTEN/NOTIFY for new jobs.
 *   batched   the batching options of its performance docs (localQueue.size 500,
 *             completeJobBatchDelay 0, failJobBatchDelay 0). They first shipped in 0.17, so this
 *             variant runs the devDependency alias graphile-worker-0.17 (0.17.3, still Node 20).
 * Enqueue with the add_jobs() SQL function (its bulk API in both versions), single jobs with
 * WorkerUtils.addJob. Completed jobs are deleted, so completed = enqueued - still in the table.
 */
export function createGraphileSystem(run: RunSettings, variant: "default" | "batched"): BenchSystem {
  const batched = variant === "batched";
  const packageName = batched ? "graphile-worker-0.17" : "graphile-worker";
  const schema = `graphile_worker_bench_${variant}_${run.runId}`;
  let pool: pg.Pool | undefined;
  let utils: WorkerUtils | undefined;
  let enqueued = 0;
  let migrated = false;
  const addOne = async (job: BenchJob) => {
    await utils!.addJob("bench", job);
    enqueued++;
  };
  const addBulk = async (jobs: BenchJob[]) => {
    const specs = jobs.map((payload) => ({ identifier: "bench", payload }));
    const sql = `select count(*) from ${schema}.add_jobs(array(select json_populate_recordset(null::${schema}.job_spec, $1::json)))`;
    await pool!.query(sql, [JSON.stringify(specs)]);
    enqueued += jobs.length;
  };
  return {
    name: batched ? "graphile-batched" : "graphile",
    settings: batched
      ? `graphile-worker 0.17.3: concurrency ${run.concurrency}, maxPoolSize ${run.concurrency + 1}, localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0, add_jobs()`
      : `graphile-worker 0.16.6: concurrency ${run.concurrency}, maxPoolSize ${run.concurrency + 1}, pollInterval 2 s (default; LISTEN/NOTIFY wakes it), add_jobs()`,
    async open() {
      const gw = await loadGraphile(packageName);
      pool = new pg.Pool({ connectionString: run.postgresUrl, max: 4 });
      await gw.runMigrations({ connectionString: run.postgresUrl, schema });
      migrated = true;
      utils = await gw.makeWorkerUtils({ connectionString: run.postgresUrl, schema });
    },
    enqueueNoops: (from, count) => addBulk(Array.from({ length: count }, (_, i) => ({ kind: "noop", n: from + i }))),
    enqueueProbe: (key) => addOne({ kind: "probe", key }),
    enqueueHolds: (keys, ms) => addBulk(keys.map((key) => ({ kind: "hold", key, ms }))),
    async completedJobs() {
      const before = enqueued;
      const { rows } = await pool!.query<{ n: number }>(`select count(*)::int as n from ${schema}._private_jobs`);
      return before - (rows[0]?.n ?? 0);
    },
    startWorker(): WorkerChild {
      return spawnPeerWorker("bench/peers/graphile-worker.ts", {
        BENCH_POSTGRES_URL: run.postgresUrl,
        BENCH_SCHEMA: schema,
        BENCH_CONCURRENCY: String(run.concurrency),
        BENCH_GRAPHILE_PACKAGE: packageName,
        BENCH_GRAPHILE_BATCHED: batched ? "1" : "0",
        // graphile-worker logs a line for every successful job unless this is set (its performance docs).
        NO_LOG_SUCCESS: "1",
      });
    },
    async close() {
      await utils?.release();
      if (pool && migrated) await pool.query(`drop schema if exists ${schema} cascade`);
      await pool?.end();
    },
  };
}
