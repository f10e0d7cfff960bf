import PgBoss from "pg-boss";
import pg from "pg";
import type { BenchJob } from "./report.js";
import type { BenchSystem, RunSettings } from "./system.js";
import { spawnPeerWorker, type WorkerChild } from "./worker-child.js";

/**
 * pg-boss 10 in a schema of its own (dropped at the end), one standard queue. Enqueue with insert()
 * (its bulk API), single jobs with send(). The worker is one work() with batchSize = concurrency and
 * the shortest polling interval v10 allows (0.5 s); v10 has no LISTEN/NOTIFY, and its worker waits out
 * the polling interval even after a full batch, so the handler calls notifyWorker() (its documented
 * way to skip the wait) when a batch came back full. Job defaults are v10's: retryLimit 2 and
 * expireIn 15 minutes, which is what re-runs a killed worker's jobs.
 */
export function createPgbossSystem(run: RunSettings): BenchSystem {
  const schema = `pgboss_bench_${run.runId}`;
  const queueName = "bench";
  let boss: PgBoss | undefined;
  let pool: pg.Pool | undefined;
  const send = async (job: BenchJob) => void (await boss!.send(queueName, job));
  const insert = (jobs: BenchJob[]) => boss!.insert(jobs.map((data) => ({ name: queueName, data })));
  return {
    name: "pgboss",
    settings: `pg-boss 10.4.2: work() batchSize ${run.concurrency}, pollingIntervalSeconds 0.5 (v10's minimum), notifyWorker() after a full batch, insert()`,
    async open() {
      pool = new pg.Pool({ connectionString: run.postgresUrl, max: 2 });
      boss = new PgBoss({ connectionString: run.postgresUrl, schema, supervise: false, schedule: false, max: 4 });
      boss.on("error", (error) => process.stderr.write(`pg-boss client: ${error.message}\n`));
      await boss.start();
      await boss.createQueue(queueName);
    },
    enqueueNoops: (from, count) => insert(Array.from({ length: count }, (_, i) => ({ kind: "noop", n: from + i }))),
    enqueueProbe: (key) => send({ kind: "probe", key }),
    enqueueHolds: (keys, ms) => insert(keys.map((key) => ({ kind: "hold", key, ms }))),
    async completedJobs() {
      const { rows } = await pool!.query<{ n: number }>(
        `select count(*)::int as n from ${schema}.job where name = $1 and state = 'completed'`,
        [queueName],
      );
      return rows[0]?.n ?? 0;
    },
    startWorker(): WorkerChild {
      return spawnPeerWorker("bench/peers/pgboss-worker.ts", {
        BENCH_POSTGRES_URL: run.postgresUrl,
        BENCH_SCHEMA: schema,
        BENCH_QUEUE: queueName,
        BENCH_CONCURRENCY: String(run.concurrency),
      });
    },
    async close() {
      await boss?.stop({ graceful: false, wait: true });
      await pool?.query(`drop schema if exists ${schema} cascade`);
      await pool?.end();
    },
  };
}
