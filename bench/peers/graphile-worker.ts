/** A graphile-worker process for the peers bench: run() with settings from the driver. */
import { loadGraphile } from "./graphile-package.js";
import { reportReady, runBenchJob, setting, type BenchJob } from "./report.js";

const gw = await loadGraphile(setting("BENCH_GRAPHILE_PACKAGE"));
const concurrency = Number(setting("BENCH_CONCURRENCY"));
// The batching options exist from 0.17 on; the object is built apart so 0.16's types do not reject it.
const batching: Record<string, unknown> = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };
await gw.run({
  connectionString: setting("BENCH_POSTGRES_URL"),
  schema: setting("BENCH_SCHEMA"),
  concurrency,
  maxPoolSize: concurrency + 1,
  noHandleSignals: true,
  taskList: { bench: (payload) => runBenchJob(payload as BenchJob) },
  ...(setting("BENCH_GRAPHILE_BATCHED") === "1" ? { preset: { worker: batching } } : {}),
});
reportReady();
