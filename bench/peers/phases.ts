import { cpuSeconds, percentile, sleep } from "../support.js";
import { epochMs } from "./report.js";
import type { BenchSystem } from "./system.js";
import type { WorkerChild } from "./worker-child.js";

export interface PhaseOptions {
  /** No-op jobs per throughput phase. */
  readonly tasks: number;
  /** Jobs per bulk enqueue call. */
  readonly chunk: number;
  /** Probe jobs for the latency phase, and the spacing between them. */
  readonly probes: number;
  readonly probeSpacingMs: number;
}

export interface Figures {
  enqueuePerS: number;
  drainPerS: number;
  overlapPerS: number;
  /** CPU the worker process used (user + system, all threads) per 1,000 jobs, over both throughput phases. */
  workerCpuMsPer1000: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Probes that never started within 10 s of the last one sent. */
  latencyMissed: number;
  /** Seconds from SIGKILL until each held job started on the second worker; null: not within the cap. */
  killToRerunS: (number | null)[];
  killError?: string;
}

export type Throughput = Omit<Figures, "killToRerunS">;
type Log = (line: string) => void;

/** Throughput and latency of one open system, one worker process; the caller closes the system. */
export async function measureThroughput(system: BenchSystem, options: PhaseOptions, log: Log): Promise<Throughput> {
  const { tasks } = options;
  // Jobs completed by earlier rounds on the same system; the keys of this round's jobs follow theirs.
  const before = await system.completedJobs();
  const enqueueStarted = epochMs();
  await enqueueInChunks(system, before, options);
  const enqueuePerS = tasks / ((epochMs() - enqueueStarted) / 1000);
  log(`enqueue ${Math.round(enqueuePerS)}/s`);

  const worker = await started(system.startWorker());
  try {
    const cpuAtReady = cpuSeconds(worker.pid);
    const drainEnd = await waitForCompleted(system, before + tasks, worker, tasks);
    if (worker.firstNoopAt === undefined) await sleep(200);
    const drainStart = worker.firstNoopAt;
    if (drainStart === undefined) throw new Error(`the worker never reported its first job:\n${worker.output}`);
    const drainPerS = tasks / ((drainEnd - drainStart) / 1000);
    log(`drain ${Math.round(drainPerS)}/s`);

    const base = await system.completedJobs();
    const overlapStarted = epochMs();
    await enqueueInChunks(system, base, options);
    const overlapPerS = tasks / (((await waitForCompleted(system, base + tasks, worker, 2 * tasks)) - overlapStarted) / 1000);
    const workerCpuMsPer1000 = ((cpuSeconds(worker.pid) - cpuAtReady) * 1000) / ((2 * tasks) / 1000);
    log(`overlap ${Math.round(overlapPerS)}/s; worker CPU ${workerCpuMsPer1000.toFixed(0)} ms per 1,000 jobs`);

    await sleep(1000);
    const latency = await probeLatency(system, worker, options);
    log(`latency p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms`);
    return {
      enqueuePerS,
      drainPerS,
      overlapPerS,
      workerCpuMsPer1000,
      latencyP50Ms: latency.p50,
      latencyP99Ms: latency.p99,
      latencyMissed: latency.missed,
    };
  } catch (error) {
    log(`worker output (last lines):\n${worker.output.trim().split("\n").slice(-15).join("\n")}`);
    throw error;
  } finally {
    await worker.kill();
  }
}

async function enqueueInChunks(system: BenchSystem, from: number, { tasks, chunk }: PhaseOptions): Promise<void> {
  for (let done = 0; done < tasks; done += chunk) await system.enqueueNoops(from + done, Math.min(chunk, tasks - done));
}

async function started(worker: WorkerChild): Promise<WorkerChild> {
  try {
    await worker.ready;
    return worker;
  } catch (error) {
    await worker.kill();
    throw error;
  }
}

/**
 * Epoch ms at which the system first reports `target` completed jobs. The driver first waits,
 * without a query, until the worker says it has run `workerNoops` no-ops (to the last report
 * before that), then asks the system every 2 ms: the poll is load on the server being measured,
 * and a count can cost some systems milliseconds of server time.
 */
async function waitForCompleted(
  system: BenchSystem,
  target: number,
  worker: WorkerChild,
  workerNoops: number,
  timeoutMs = 180_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  await worker.untilNoops(workerNoops, deadline);
  for (;;) {
    const done = await system.completedJobs();
    const now = epochMs();
    if (done >= target) return now;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${target} jobs completed within ${timeoutMs / 1000} s`);
    await sleep(2);
  }
}

/** Single jobs into an idle worker, one every `probeSpacingMs`; enqueue to start, as timed inside the job. */
async function probeLatency(system: BenchSystem, worker: WorkerChild, options: PhaseOptions) {
  const sentAt = new Map<string, number>();
  const first = epochMs();
  for (let i = 0; i < options.probes; i++) {
    const key = `probe-${i}`;
    sentAt.set(key, epochMs());
    await system.enqueueProbe(key);
    await sleep(Math.max(0, first + (i + 1) * options.probeSpacingMs - epochMs()));
  }
  const deadline = Date.now() + 10_000;
  const latencies: number[] = [];
  let missed = 0;
  for (const [key, sent] of sentAt) {
    const start = await worker.startOf(key, deadline);
    if (start === undefined) missed++;
    else latencies.push(start - sent);
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), missed };
}

/**
 * The seed's kill scenario: worker A runs 3 long jobs, worker B is up and idle, A is SIGKILLed. Resolves
 * right after the kill; `rerunS` then resolves with the seconds until each job started again on B
 * (null: not within `capS`), and both workers are gone. The driver overlaps the long waits of
 * several systems this way, so the run stays short.
 */
export async function startKillScenario(system: BenchSystem, capS: number, log: Log): Promise<{ rerunS: Promise<(number | null)[]> }> {
  const keys = ["hold-0", "hold-1", "hold-2"];
  const a = await started(system.startWorker());
  let b: WorkerChild | undefined;
  try {
    await system.enqueueHolds(keys, 600_000);
    const deadline = Date.now() + 30_000;
    for (const key of keys) {
      if ((await a.startOf(key, deadline)) === undefined) throw new Error(`worker A did not start ${key} within 30 s:\n${a.output}`);
    }
    b = await started(system.startWorker());
    // At least 1.5 s for B to settle, then a random moment: a system that looks for dead workers
    // on a timer (nenc every 750 ms, BullMQ every 30 s) would otherwise always be killed at the
    // same point of B's cycle, just before or just after a check.
    await sleep(1500 + Math.random() * 1000);
  } catch (error) {
    await a.kill();
    await b?.kill();
    throw error;
  }
  const second = b;
  const killedAt = epochMs();
  await a.kill("SIGKILL");
  const until = Date.now() + capS * 1000;
  const rerunS = Promise.all(
    keys.map(async (key) => {
      const at = await second.startOf(key, until);
      return at === undefined ? null : (at - killedAt) / 1000;
    }),
  ).finally(() => second.kill());
  rerunS.then(
    (s) => log(`kill to re-run ${s.map((x) => (x === null ? `>${capS}` : x.toFixed(2))).join(", ")} s`),
    () => undefined,
  );
  return { rerunS };
}
