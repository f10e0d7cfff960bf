/** A pg-boss worker process for the peers bench: one work() loop, settings from the driver. */
import PgBoss from "pg-boss";
import { reportReady, runBenchJob, setting, type BenchJob } from "./report.js";

const batchSize = Number(setting("BENCH_CONCURRENCY"));
const boss = new PgBoss({ connectionString: setting("BENCH_POSTGRES_URL"), schema: setting("BENCH_SCHEMA") });
boss.on("error", (error) => process.stderr.write(`pg-boss worker: ${error.message}\n`));
await boss.start();
// Set once boss.work() resolves; the callback may run before that.
const worker: { id?: string } = {};
worker.id = await boss.work<BenchJob>(setting("BENCH_QUEUE"), { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
  await Promise.all(jobs.map((job) => runBenchJob(job.data)));
  if (jobs.length === batchSize && worker.id !== undefined) boss.notifyWorker(worker.id);
});
reportReady();
