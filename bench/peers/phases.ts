import { percentile, sleep } from "../support.js";
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
  /** Longest wait for a killed worker's jobs to start again; 0 skips the kill scenario. */
  readonly killCapS: number;
}

export interface Figures {
  enqueuePerS: number;
  drainPerS: number;
  overlapPerS: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Probes that never started within 10 s of the last one sent. */
  latencyMissed: number;
  /** Seconds from SIGKILL until each held job started on the second worker; null: not within the cap. */
  killToRerunS: (number | null)[];
}

/** Every figure for one system, in order; the system is open and is closed by the caller. */
export async function measure(system: BenchSystem, options: PhaseOptions, log: (line: string) => void): Promise<Figures> {
  const { tasks } = options;
  const enqueueStarted = epochMs();
  await enqueueInChunks(system, 0, options);
  const enqueuePerS = tasks / ((epochMs() - enqueueStarted) / 1000);
  log(`enqueue ${Math.round(enqueuePerS)}/s`);

  const worker = await started(system.startWorker());
  try {
    const drainEnd = await waitForCompleted(system, tasks);
    if (worker.firstNoopAt === undefined) await sleep(200);
    const drainStart = worker.firstNoopAt;
    if (drainStart === undefined) throw new Error(`the worker never reported its first job:\n${worker.output}`);
    const drainPerS = tasks / ((drainEnd - drainStart) / 1000);
    log(`drain ${Math.round(drainPerS)}/s`);

    const base = await system.completedJobs();
    const overlapStarted = epochMs();
    await enqueueInChunks(system, tasks, options);
    const overlapPerS = tasks / (((await waitForCompleted(system, base + tasks)) - overlapStarted) / 1000);
    log(`overlap ${Math.round(overlapPerS)}/s`);

    await sleep(1000);
    const latency = await probeLatency(system, worker, options);
    log(`latency p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms`);
    await worker.kill();

    const killToRerunS = options.killCapS > 0 ? await killScenario(system, options.killCapS, log) : [];
    return { enqueuePerS, drainPerS, overlapPerS, latencyP50Ms: latency.p50, latencyP99Ms: latency.p99, latencyMissed: latency.missed, killToRerunS };
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
 * Epoch ms at which the system first reports `target` completed jobs. Polled from the driver; slowly
 * while far off (the poll is load on the same server), every few ms near the end.
 */
async function waitForCompleted(system: BenchSystem, target: number, timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await system.completedJobs();
    const now = epochMs();
    if (done >= target) return now;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${target} jobs completed within ${timeoutMs / 1000} s`);
    await sleep(target - done > 1000 ? 25 : 2);
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
 * The seed's kill scenario: worker A runs 3 long jobs, worker B is up and idle, A is SIGKILLed; how long
 * until each job starts again (on B), capped at `capS`.
 */
async function killScenario(system: BenchSystem, capS: number, log: (line: string) => void): Promise<(number | null)[]> {
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
    await sleep(1500);
    const killedAt = epochMs();
    await a.kill("SIGKILL");
    const until = Date.now() + capS * 1000;
    const rerun = await Promise.all(
      keys.map(async (key) => {
        const at = await b!.startOf(key, until);
        return at === undefined ? null : (at - killedAt) / 1000;
      }),
    );
    log(`kill to re-run ${rerun.map((s) => (s === null ? `>${capS}` : s.toFixed(2))).join(", ")} s`);
    return rerun;
  } finally {
    await a.kill();
    await b?.kill();
  }
}
