/**
 * `npm run bench`: nenc's own figures on this machine, for the memory and SQLite backends.
 *   enqueue/s            parallelize(10,000) in batches, and invoke() one at a time
 *   processed/s          10,000 no-op tasks: draining a full queue with 1 and 2 worker processes,
 *                        and with enqueueing and work overlapping (1 process)
 *   latency p50/p99      enqueue to RUNNING with an idle worker (200 single invocations, spaced)
 *   idle CPU             an idle worker process over 30 s from 1 s after it started (all threads:
 *                        its steady cost plus the one-off collections V8 makes once it goes idle)
 *   kill to re-run       SIGKILL a worker running 3 tasks; seconds until another worker re-runs each
 * Throughput figures are the median of --repeat runs (default 3), the runs of the three phases
 * interleaved so that a busy moment of the machine does not fall on one phase only.
 * Options: --backends memory,sqlite  --tasks 10000  --repeat 3
 * Memory lives in one process, so its worker runs in the bench process and has no kill figure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Nenc } from "../src/index.js";
import { cpuSeconds, fmt, median, option, percentile, sleep, startWorker, type WorkerProcess } from "./support.js";
import { execFileSync } from "node:child_process";

const backends = option("backends", "memory,sqlite").split(",");
const TASKS = Number(option("tasks", "10000"));
const REPEAT = Number(option("repeat", "3"));
const TASK_MODULE = "bench/tasks.ts";
const IDLE_WINDOW_MS = 30_000;

interface Figures {
  enqueueBatch: number;
  enqueueSingle: number;
  drain1: number;
  drain2: number;
  overlap1: number;
  latencyP50: number;
  latencyP99: number;
  idleCpuPct: number;
  killToRerun: number[];
}

type Env = Record<string, string>;

function openClient(env: Env): Nenc {
  return new Nenc({ env: { ...process.env, NENC_LOG_TO_CONSOLE: "false", ...env }, configFile: null });
}

/** The bench tasks on a client app (same names as bench/tasks.ts). */
function tasksOf(app: Nenc) {
  return {
    noop: app.task("noop", async (_n: number) => undefined),
    slow: app.task("slow", async (ms: number) => {
      await sleep(ms);
      return "done";
    }),
  };
}

async function waitForSuccesses(app: Nenc, count: number, timeoutMs = 300_000): Promise<number> {
  const backend = await app.backend();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await backend.state.counts();
    if ((counts.SUCCESS ?? 0) >= count) return Date.now();
    if (Date.now() > deadline) throw new Error(`only ${counts.SUCCESS ?? 0} of ${count} succeeded: ${JSON.stringify(counts)}`);
    await sleep(20);
  }
}

const args = (n: number) => Array.from({ length: n }, (_, i) => [i] as [number]);

async function enqueueRates(env: Env): Promise<[number, number]> {
  const app = openClient(env);
  const { noop } = tasksOf(app);
  await app.backend();
  let t = performance.now();
  await noop.parallelize(args(TASKS));
  const batch = TASKS / ((performance.now() - t) / 1000);
  const singles = Math.min(2000, TASKS);
  t = performance.now();
  for (let i = 0; i < singles; i++) await noop.invoke(i);
  const single = singles / ((performance.now() - t) / 1000);
  await (await app.backend()).state.purge();
  await app.close();
  return [batch, single];
}

/** A worker: a child process for shared backends, this process for memory. */
async function startWorkers(env: Env, n: number, app: Nenc): Promise<{ stop(): Promise<void>; pids: number[] }> {
  if (env["NENC_BACKEND"] === "memory") {
    const worker = await app.startWorker();
    return { stop: () => worker.stop(), pids: [process.pid] };
  }
  const workers: WorkerProcess[] = Array.from({ length: n }, () => startWorker(TASK_MODULE, env));
  await Promise.all(workers.map((w) => w.ready));
  return { stop: async () => void (await Promise.all(workers.map((w) => w.stop()))), pids: workers.map((w) => w.child.pid!) };
}

async function drain(env: Env, processes: number): Promise<number> {
  const app = openClient(env);
  const { noop } = tasksOf(app);
  await noop.parallelize(args(TASKS));
  const t = Date.now();
  const workers = await startWorkers(env, processes, app);
  // For processes, count from the moment the first worker was ready, which is no later than its first claim.
  const start = env["NENC_BACKEND"] === "memory" ? t : Date.now();
  const end = await waitForSuccesses(app, TASKS);
  await workers.stop();
  await (await app.backend()).state.purge();
  await app.close();
  return TASKS / ((end - Math.min(start, end)) / 1000);
}

async function overlap(env: Env): Promise<number> {
  const app = openClient(env);
  const { noop } = tasksOf(app);
  const workers = await startWorkers(env, 1, app);
  const t = Date.now();
  await noop.parallelize(args(TASKS));
  const end = await waitForSuccesses(app, TASKS);
  await workers.stop();
  await (await app.backend()).state.purge();
  await app.close();
  return TASKS / ((end - t) / 1000);
}

async function latencyAndIdle(env: Env): Promise<[number, number, number]> {
  const app = openClient(env);
  const { noop } = tasksOf(app);
  const workers = await startWorkers(env, 1, app);
  await sleep(1000);
  const pid = workers.pids[0]!;
  const cpu0 = cpuSeconds(pid);
  const wall0 = performance.now();
  await sleep(IDLE_WINDOW_MS);
  const idle = ((cpuSeconds(pid) - cpu0) / ((performance.now() - wall0) / 1000)) * 100;
  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) {
    const inv = await noop.invoke(i);
    await inv.result();
    const history = await inv.history();
    const registered = history.find((h) => h.status === "REGISTERED")!.at;
    const running = history.find((h) => h.status === "RUNNING")!.at;
    latencies.push(running - registered);
    await sleep(15);
  }
  await workers.stop();
  await (await app.backend()).state.purge();
  await app.close();
  return [median(latencies), percentile(latencies, 99), env["NENC_BACKEND"] === "memory" ? NaN : idle];
}

async function killToRerun(env: Env): Promise<number[]> {
  const app = openClient(env);
  const { slow } = tasksOf(app);
  const first = startWorker(TASK_MODULE, env);
  await first.ready;
  const invs = await slow.parallelize([[30_000], [30_000], [30_000]]);
  const running = async () => (await Promise.all(invs.map((i) => i.status()))).every((s) => s === "RUNNING");
  while (!(await running())) await sleep(20);
  const second = startWorker(TASK_MODULE, env);
  await second.ready;
  await sleep(1500);
  const killedAt = Date.now();
  first.child.kill("SIGKILL");
  const rerunAt = async (id: string) => {
    for (;;) {
      const rerun = (await app.invocation(id).history()).find((h) => h.status === "RUNNING" && h.attempt >= 2);
      if (rerun) return rerun.at;
      if (Date.now() - killedAt > 120_000) throw new Error("not re-run within 120 s");
      await sleep(10);
    }
  };
  const times = await Promise.all(invs.map((i) => rerunAt(i.id)));
  await first.stop();
  await second.stop("SIGTERM");
  await (await app.backend()).state.purge();
  await app.close();
  return times.map((t) => (t - killedAt) / 1000);
}

async function measure(kind: string): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "nenc-bench-"));
  const env: Env = { NENC_BACKEND: kind, NENC_APP_ID: `bench-${process.pid}`, NENC_SQLITE_PATH: join(dir, "bench.sqlite") };
  try {
    const [enqueueBatch, enqueueSingle] = await enqueueRates(env);
    const runs: { drain1: number[]; drain2: number[]; overlap1: number[] } = { drain1: [], drain2: [], overlap1: [] };
    for (let i = 0; i < REPEAT; i++) {
      runs.drain1.push(await drain(env, 1));
      runs.drain2.push(kind === "memory" ? NaN : await drain(env, 2));
      runs.overlap1.push(await overlap(env));
    }
    process.stderr.write(`  ${kind} runs: ${JSON.stringify(runs)}\n`);
    const drain1 = median(runs.drain1);
    const drain2 = median(runs.drain2);
    const overlap1 = median(runs.overlap1);
    const [latencyP50, latencyP99, idleCpuPct] = await latencyAndIdle(env);
    const kill = kind === "memory" ? [] : await killToRerun(env);
    return { enqueueBatch, enqueueSingle, drain1, drain2, overlap1, latencyP50, latencyP99, idleCpuPct, killToRerun: kill };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function rawSqlite(): string {
  try {
    const out = execFileSync(process.execPath, ["--import", "tsx", "bench/sqlite-raw.ts"], { encoding: "utf8" });
    return out.trim().split("\n").at(-1) ?? "";
  } catch (error) {
    return `failed: ${(error as Error).message}`;
  }
}

const all: Record<string, Figures> = {};
for (const kind of backends) {
  process.stderr.write(`measuring ${kind}...\n`);
  all[kind] = await measure(kind);
}
const rows: [string, (f: Figures) => string][] = [
  ["enqueue/s, parallelize (the backend's batches: 1,000 here)", (f) => fmt(f.enqueueBatch)],
  ["enqueue/s, invoke one at a time", (f) => fmt(f.enqueueSingle)],
  [`processed/s, drain ${TASKS} no-op, 1 worker process (median of ${REPEAT})`, (f) => fmt(f.drain1)],
  [`processed/s, drain ${TASKS} no-op, 2 worker processes (median of ${REPEAT})`, (f) => fmt(f.drain2)],
  [`processed/s, ${TASKS} no-op, enqueue and work overlapping, 1 process (median of ${REPEAT})`, (f) => fmt(f.overlap1)],
  ["enqueue to RUNNING p50 (ms), idle worker", (f) => fmt(f.latencyP50, 1)],
  ["enqueue to RUNNING p99 (ms), idle worker", (f) => fmt(f.latencyP99, 1)],
  ["idle worker CPU (%)", (f) => fmt(f.idleCpuPct, 2)],
  [
    "SIGKILL to re-run (s), median / max of 3",
    (f) => (f.killToRerun.length ? `${fmt(median(f.killToRerun), 2)} / ${fmt(Math.max(...f.killToRerun), 2)}` : "n/a"),
  ],
];
console.log(`\n| figure | ${backends.join(" | ")} |`);
console.log(`| --- | ${backends.map(() => "---").join(" | ")} |`);
for (const [name, show] of rows) console.log(`| ${name} | ${backends.map((b) => show(all[b]!)).join(" | ")} |`);
if (backends.includes("sqlite")) console.log(`\nraw SQLite claim+complete (physical limit): ${rawSqlite()}`);
console.log(`\n${JSON.stringify(all)}`);
