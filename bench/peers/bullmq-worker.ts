/** A BullMQ worker process for the peers bench: one Worker, settings from the driver. */
import { Worker } from "bullmq";
import { redisOptions } from "./redis-options.js";
import { reportReady, runBenchJob, setting, type BenchJob } from "./report.js";

const worker = new Worker<BenchJob>(setting("BENCH_QUEUE"), (job) => runBenchJob(job.data), {
  connection: { ...redisOptions(setting("BENCH_REDIS_URL")), maxRetriesPerRequest: null },
  concurrency: Number(setting("BENCH_CONCURRENCY")),
});
worker.on("error", (error) => process.stderr.write(`bullmq worker: ${error.message}\n`));
await worker.waitUntilReady();
reportReady();
