import { Queue } from "bullmq";
import { redisOptions } from "./redis-options.js";
import type { BenchJob } from "./report.js";
import type { BenchSystem, RunSettings } from "./system.js";
import { spawnPeerWorker, type WorkerChild } from "./worker-child.js";

/**
 * BullMQ on the shared Redis, in a queue of its own (obliterated at the end). Enqueue with
 * Queue.addBulk; one Worker with `concurrency` in a child process; default job retention (completed
 * jobs kept, which is what the driver counts) and default stalled-job checks (lockDuration and
 * stalledInterval 30 s), which is what recovers a killed worker's jobs.
 */
export function createBullmqSystem(run: RunSettings): BenchSystem {
  const queueName = `nenc-bench-${run.runId}`;
  const connection = { ...redisOptions(run.redisUrl), maxRetriesPerRequest: null };
  let queue: Queue<BenchJob> | undefined;
  const add = (job: BenchJob) => queue!.add(job.kind, job);
  const addBulk = (jobs: BenchJob[]) => queue!.addBulk(jobs.map((data) => ({ name: data.kind, data })));
  return {
    name: "bullmq",
    settings: `bullmq 6.7.0: Worker concurrency ${run.concurrency}, drainDelay 5 s (default), Queue.addBulk, default lock/stalled settings`,
    async open() {
      queue = new Queue<BenchJob>(queueName, { connection });
      await queue.waitUntilReady();
    },
    async enqueueNoops(from, count) {
      await addBulk(Array.from({ length: count }, (_, i) => ({ kind: "noop", n: from + i })));
    },
    enqueueProbe: async (key) => void (await add({ kind: "probe", key })),
    enqueueHolds: async (keys, ms) => void (await addBulk(keys.map((key) => ({ kind: "hold", key, ms })))),
    completedJobs: () => queue!.getCompletedCount(),
    startWorker(): WorkerChild {
      return spawnPeerWorker("bench/peers/bullmq-worker.ts", {
        BENCH_REDIS_URL: run.redisUrl,
        BENCH_QUEUE: queueName,
        BENCH_CONCURRENCY: String(run.concurrency),
      });
    },
    async close() {
      if (!queue) return;
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}
