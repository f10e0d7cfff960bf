/**
 * `npm run bench:peers`: nenc against the libraries its users would otherwise pick, side by side on
 * the same servers in one run: nenc on Redis against BullMQ; nenc on PostgreSQL against
 * graphile-worker (default, and with its batching options) and pg-boss. For each system, with one
 * worker process (a real child process for every system) at concurrency 50:
 *   enqueue/s         10,000 no-op jobs through the system's bulk API, in calls of 1,000
 *   processed/s       draining those 10,000 (timed from the first job's start to the last completion
 *                     the system records), then 10,000 more with enqueueing and work overlapping
 *   worker CPU        CPU time of the worker process per 1,000 jobs over those two phases (less
 *                     noisy than the rates on a busy machine; the server's own CPU is not in it)
 *   latency p50/p99   200 single jobs into an idle worker, one every 15 ms: enqueue call to the job's
 *                     start, timed inside the job
 *   kill to re-run    a worker running 3 long jobs is SIGKILLed while a second worker is up: seconds
 *                     until each job starts again on the second worker, capped (default 90 s). Each
 *                     system runs with its default recovery settings. These run after all the
 *                     throughput phases, and their long waits overlap (see runKillScenarios).
 * Throughput and latency figures are the median of --repeat rounds (default 3), taken system by
 * system in turn.
 * Options: --systems bullmq,nenc-redis,graphile,graphile-batched,pgboss,nenc-postgres (graphile names
 *          both graphile variants)  --tasks 10000  --concurrency 50  --chunk 1000  --kill-cap 90  --repeat 3
 *          --redis-url redis://127.0.0.1:6379  --postgres-url postgres://127.0.0.1:5432/test
 * Each system keeps its data in its own queue, schema or app id and removes it at the end.
 * A nenc backend that is not in this build prints as "not available".
 */
import { cpus, loadavg } from "node:os";
import { fmt, median, option, sleep } from "./support.js";
import { measureThroughput, startKillScenario, type Figures, type PhaseOptions, type Throughput } from "./peers/phases.js";
import { SystemUnavailable, type BenchSystem, type RunSettings } from "./peers/system.js";
import { ALL, createSystem, isSystemName, type SystemName } from "./peers/systems.js";
import { withUser } from "./peers/postgres-url.js";
import { killLiveWorkers } from "./peers/worker-child.js";

/** One table per server; each peer is compared with nenc on the same server. */
const GROUPS: { server: string; peers: SystemName[]; nenc: SystemName }[] = [
  { server: "Redis", peers: ["bullmq"], nenc: "nenc-redis" },
  { server: "PostgreSQL", peers: ["graphile", "graphile-batched", "pgboss"], nenc: "nenc-postgres" },
];

function selectedSystems(list: string): SystemName[] {
  const wanted = new Set<SystemName>();
  for (const raw of list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (raw === "graphile") wanted.add("graphile").add("graphile-batched");
    else if (raw === "graphile-default") wanted.add("graphile");
    else if (isSystemName(raw)) wanted.add(raw);
    else throw new Error(`--systems: unknown system ${JSON.stringify(raw)} (known: ${ALL.join(", ")}, graphile-default)`);
  }
  return ALL.filter((name) => wanted.has(name));
}

type Outcome = { figures: Figures; settings: string } | { unavailable: string; settings: string } | { failed: string; settings: string };

const logFor = (name: string) => (line: string) => process.stderr.write(`  ${name}: ${line}\n`);

/** Open the system (true), or say why it cannot be measured; on failure it is closed again. */
async function openSystem(system: BenchSystem): Promise<true | Outcome> {
  try {
    await system.open();
    return true;
  } catch (error) {
    return failed(system, error);
  }
}

/** One round of throughput and latency on an open system; on failure it is closed. */
async function measureRound(system: BenchSystem, options: PhaseOptions, round: number): Promise<{ throughput: Throughput } | Outcome> {
  process.stderr.write(`measuring ${system.name}, round ${round + 1} of ${repeat}...\n`);
  try {
    return { throughput: await measureThroughput(system, options, logFor(system.name)) };
  } catch (error) {
    return failed(system, error);
  }
}

async function failed(system: BenchSystem, error: unknown): Promise<Outcome> {
  const log = logFor(system.name);
  await system.close().catch((e: Error) => log(`cleanup failed: ${e.message}`));
  const message = (error as Error).message;
  log(error instanceof SystemUnavailable ? `not available: ${message}` : `failed: ${(error as Error).stack ?? message}`);
  return error instanceof SystemUnavailable
    ? { unavailable: message, settings: system.settings }
    : { failed: message, settings: system.settings };
}

/** Each figure's median over the rounds (a system that never started a probe keeps the worst count). */
function medianRound(rounds: readonly Throughput[]): Throughput {
  const of = (pick: (t: Throughput) => number) => median(rounds.map(pick));
  return {
    enqueuePerS: of((t) => t.enqueuePerS),
    drainPerS: of((t) => t.drainPerS),
    overlapPerS: of((t) => t.overlapPerS),
    workerCpuMsPer1000: of((t) => t.workerCpuMsPer1000),
    latencyP50Ms: of((t) => t.latencyP50Ms),
    latencyP99Ms: of((t) => t.latencyP99Ms),
    latencyMissed: Math.max(...rounds.map((t) => t.latencyMissed)),
  };
}

/**
 * The kill scenario of each measured system. They run one after another up to the kill; each then has
 * a few seconds to itself before the next starts its workers, and the long waits (BullMQ's stalled
 * check, the others' lock timeouts) overlap, which keeps the run short.
 */
async function runKillScenarios(measured: Map<SystemName, { system: BenchSystem; figures: Figures }>, capS: number): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const { system, figures } of measured.values()) {
    const log = logFor(system.name);
    log("kill scenario...");
    try {
      const { rerunS } = await startKillScenario(system, capS, log);
      const recorded = rerunS.then((s) => void (figures.killToRerunS = s));
      waits.push(recorded.catch((error: Error) => void (figures.killError = error.message)));
      await Promise.race([recorded.catch(() => undefined), sleep(5000)]);
    } catch (error) {
      figures.killError = (error as Error).message;
      log(`kill scenario failed: ${(error as Error).stack ?? figures.killError}`);
    }
  }
  await Promise.all(waits);
}

const killCap = Number(option("kill-cap", "90"));
const repeat = Math.max(1, Number(option("repeat", "3")));
const rerun = (s: number | null) => (s === null ? `>${killCap}` : fmt(s, 2));
const ROWS: [string, (f: Figures) => string][] = [
  ["enqueue/s (bulk API, calls of CHUNK)", (f) => fmt(f.enqueuePerS)],
  ["processed/s, draining TASKS queued no-ops", (f) => fmt(f.drainPerS)],
  ["processed/s, TASKS no-ops, enqueue and work overlapping", (f) => fmt(f.overlapPerS)],
  ["worker process CPU per 1,000 jobs (ms), both phases", (f) => fmt(f.workerCpuMsPer1000)],
  [
    "enqueue to start p50 (ms), idle worker",
    (f) => fmt(f.latencyP50Ms, 1) + (f.latencyMissed ? ` (${f.latencyMissed} never started)` : ""),
  ],
  ["enqueue to start p99 (ms), idle worker", (f) => fmt(f.latencyP99Ms, 1)],
  [
    "SIGKILL to re-run (s), each of 3 jobs",
    (f) => (f.killError ? "failed" : f.killToRerunS.length ? f.killToRerunS.map(rerun).join(" / ") : "not run"),
  ],
];

function cell(outcome: Outcome | undefined, show: (f: Figures) => string): string {
  if (!outcome) return "not run";
  if ("figures" in outcome) return show(outcome.figures);
  return "unavailable" in outcome ? "not available" : "failed";
}

function ratio(nenc: Outcome | undefined, peer: Outcome | undefined, pick: (f: Figures) => number): number | null {
  return nenc && peer && "figures" in nenc && "figures" in peer ? pick(nenc.figures) / pick(peer.figures) : null;
}

const options: PhaseOptions = {
  tasks: Number(option("tasks", "10000")),
  chunk: Number(option("chunk", "1000")),
  probes: 200,
  probeSpacingMs: 15,
};
const run: RunSettings = {
  redisUrl: option("redis-url", process.env["NENC_REDIS_URL"] ?? "redis://127.0.0.1:6379"),
  postgresUrl: withUser(option("postgres-url", process.env["NENC_POSTGRES_URL"] ?? "postgres://127.0.0.1:5432/test")),
  concurrency: Number(option("concurrency", "50")),
  runId: `p${process.pid}`,
};
const names = selectedSystems(option("systems", ALL.join(",")));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killLiveWorkers();
    process.exit(130);
  });
}
process.once("exit", killLiveWorkers);

const started = Date.now();
const loadAtStart = loadavg();
const outcomes = new Map<SystemName, Outcome>();
const measured = new Map<SystemName, { system: BenchSystem; figures: Figures }>();
const open = new Map<SystemName, BenchSystem>();
try {
  for (const name of names) {
    const system = createSystem(name, run);
    const opened = await openSystem(system);
    if (opened === true) open.set(name, system);
    else outcomes.set(name, opened);
  }
  // Rounds go system by system in turn, so that a busy spell of the machine is shared out.
  const rounds = new Map<SystemName, Throughput[]>();
  for (let round = 0; round < repeat; round++) {
    for (const [name, system] of open) {
      const result = await measureRound(system, options, round);
      if ("throughput" in result) rounds.set(name, [...(rounds.get(name) ?? []), result.throughput]);
      else {
        outcomes.set(name, result);
        open.delete(name);
      }
    }
  }
  for (const [name, system] of open) {
    const figures: Figures = { ...medianRound(rounds.get(name)!), killToRerunS: [] };
    measured.set(name, { system, figures });
    outcomes.set(name, { figures, settings: system.settings });
    process.stderr.write(
      `  ${name} rounds: ${JSON.stringify(rounds.get(name)!.map((t) => [Math.round(t.drainPerS), Math.round(t.overlapPerS)]))}\n`,
    );
  }
  if (killCap > 0) await runKillScenarios(measured, killCap);
} finally {
  for (const { system } of measured.values()) await system.close().catch((e: Error) => logFor(system.name)(`cleanup failed: ${e.message}`));
}

const label = (row: string) => row.replace("TASKS", fmt(options.tasks)).replace("CHUNK", fmt(options.chunk));
const ratios: Record<string, { drain: number | null; overlap: number | null }> = {};
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
console.log(
  `\n${fmt(options.tasks)} no-op tasks, one worker process per system, concurrency ${run.concurrency}, median of ${repeat} rounds; Node ${process.version}`,
);
console.log(`load average (1/5/15 min) at start ${load(loadAtStart)}, at end ${load(loadavg())} on ${cpus().length} CPUs`);
for (const { server, peers, nenc } of GROUPS) {
  const columns = [...peers, nenc].filter((name) => names.includes(name));
  if (columns.length === 0) continue;
  console.log(`\n${server}\n\n| figure | ${columns.join(" | ")} |`);
  console.log(`| --- | ${columns.map(() => "---:").join(" | ")} |`);
  for (const [row, show] of ROWS) console.log(`| ${label(row)} | ${columns.map((name) => cell(outcomes.get(name), show)).join(" | ")} |`);
  const compared = names.includes(nenc) ? peers.filter((name) => names.includes(name)) : [];
  if (compared.length > 0) console.log("");
  for (const peer of compared) {
    const drain = ratio(outcomes.get(nenc), outcomes.get(peer), (f) => f.drainPerS);
    const overlap = ratio(outcomes.get(nenc), outcomes.get(peer), (f) => f.overlapPerS);
    ratios[`${nenc}/${peer}`] = { drain, overlap };
    const show = (r: number | null) => (r === null ? "n/a" : `${fmt(r, 2)}x`);
    console.log(`${nenc} / ${peer}, processed/s: draining ${show(drain)}, overlapping ${show(overlap)}  `);
  }
}
console.log("\nsettings:");
for (const [name, outcome] of outcomes) {
  const note =
    "unavailable" in outcome ? ` (not available: ${outcome.unavailable})` : "failed" in outcome ? ` (failed: ${outcome.failed})` : "";
  console.log(`- ${name}: ${outcome.settings}${note}`);
}
console.log(`\ntotal ${fmt((Date.now() - started) / 1000)} s`);
console.log(
  JSON.stringify({
    tasks: options.tasks,
    concurrency: run.concurrency,
    killCapS: killCap,
    node: process.version,
    loadAverage: { start: loadAtStart, end: loadavg() },
    systems: Object.fromEntries(outcomes),
    ratios,
  }),
);
process.exitCode = [...outcomes.values()].some((o) => "failed" in o || ("figures" in o && o.figures.killError)) ? 1 : 0;
