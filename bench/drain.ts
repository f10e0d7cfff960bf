/**
 * `npm run bench:drain -- SYSTEM [--tasks N] [--rounds R] [--workers W] [--pin same|apart]
 * [--overlap]`: one system of bench:peers draining N queued no-ops (default 20,000) with W worker
 * processes (default 1) sharing the queue, R times (default 3), reporting per round the rate (and
 * apart, that of the first 1,000, which run while the workers' code is still being compiled) and
 * the CPU per job of the worker processes (all threads) and of the server (every redis-server or
 * postgres process), from /proc, and on PostgreSQL the bytes of write-ahead log per job (how much
 * the server writes). It shows where a system's time goes, which bench:peers' rates alone do not.
 * SYSTEM is one of bench:peers' systems (nenc-redis, bullmq, nenc-postgres, graphile,
 * graphile-batched, pgboss).
 *
 * --pin same|apart (needs taskset and the right to use it on the server's processes): pin the
 * server to CPU 0 and the workers to CPU 0 as well (same) or to CPU 1 (apart), to see how much of a
 * rate comes from how the two share the cores. The server's processes are given every CPU back at
 * the end.
 *
 * --overlap: after each drain, N more no-ops enqueued in calls of 1,000 while the same workers run
 * them (bench:peers' overlapping phase), timed from the first enqueue call to the last completion,
 * with the CPU per job of the workers, the server and this process (the enqueuing client) over it.
 */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import pg from "pg";
import { withUser } from "./peers/postgres-url.js";
import type { RunSettings } from "./peers/system.js";
import { ALL, createSystem, isSystemName } from "./peers/systems.js";
import { NOOP_REPORT_EVERY } from "./peers/report.js";
import type { WorkerChild } from "./peers/worker-child.js";
import { cpuSeconds, cpuSecondsNamed, fmt, median, option, pidsNamed, sleep } from "./support.js";

const argv = process.argv.slice(2);
const name = argv[0] && !argv[0].startsWith("--") ? argv[0] : "nenc-redis";
if (!isSystemName(name)) throw new Error(`unknown system ${JSON.stringify(name)} (known: ${ALL.join(", ")})`);
const tasks = Number(option("tasks", "20000"));
const rounds = Number(option("rounds", "3"));
const workerCount = Number(option("workers", "1"));
if (!Number.isInteger(workerCount) || workerCount < 1)
  throw new Error(`--workers: expected a whole number from 1, got ${option("workers", "1")}`);
const pin = option("pin", "");
const overlap = argv.includes("--overlap");
if (pin && pin !== "same" && pin !== "apart") throw new Error(`--pin: expected same or apart, got ${JSON.stringify(pin)}`);

const run: RunSettings = {
  redisUrl: process.env["NENC_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  postgresUrl: withUser(process.env["NENC_POSTGRES_URL"] ?? "postgres://127.0.0.1:5432/test"),
  concurrency: 50,
  runId: `d${process.pid}`,
};

const serverName = name === "nenc-redis" || name === "bullmq" ? "redis-server" : "postgres";

const serverPids = () => pidsNamed(serverName);
/** PostgreSQL's write-ahead log position: the bytes a drain logs per job tell how much it writes. */
const walClient = serverName === "postgres" ? new pg.Client({ connectionString: run.postgresUrl }) : null;
await walClient?.connect();
const walBytes = async () =>
  walClient
    ? Number((await walClient.query<{ at: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS at")).rows[0]!.at)
    : 0;
const serverCpuSeconds = () => cpuSecondsNamed(serverName);

const taskset = (mask: string, pid: number) => execFileSync("taskset", ["-a", "-p", mask, String(pid)], { stdio: "ignore" });
const allCpus = ((1 << cpus().length) - 1).toString(16);

const label = workerCount > 1 ? `${name} (${workerCount} workers)` : name;
const workersWord = workerCount > 1 ? "workers" : "worker";

/**
 * Resolves once the workers' reported no-ops add up to `count`, less what each may not have
 * reported yet (a worker reports every NOOP_REPORT_EVERY of its own), or at `deadline`.
 */
async function untilNoops(workers: WorkerChild[], count: number, deadline: number): Promise<void> {
  const target = count - (workers.length - 1) * (NOOP_REPORT_EVERY - 1);
  const total = () => workers.reduce((sum, w) => sum + w.noops, 0);
  while (total() < Math.floor(target / NOOP_REPORT_EVERY) * NOOP_REPORT_EVERY && Date.now() < deadline) {
    if (workers.every((w) => w.child.exitCode !== null || w.child.signalCode !== null)) return;
    // Wakes on the next report of any of them (each waits at most 100 ms).
    await Promise.race(workers.map((w) => w.untilNoops(w.noops + NOOP_REPORT_EVERY, deadline)));
  }
}

const results: { perS: number; firstPerS: number; restPerS: number; workerUs: number; serverUs: number; walBytes: number }[] = [];
const overlapResults: { perS: number; workerUs: number; serverUs: number; clientUs: number; walBytes: number }[] = [];
/** CPU seconds (user + system) of this process: the enqueuing client of the overlapping phase. */
const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
/** Microseconds per job of a phase of `tasks` jobs that took `seconds` of CPU. */
const perJob = (seconds: number) => (seconds * 1e6) / tasks;
/** No-ops timed apart at the start of each drain. */
const FIRST = Math.min(1000, tasks);
try {
  if (pin) for (const pid of serverPids()) taskset("1", pid);
  for (let round = 1; round <= rounds; round++) {
    const system = createSystem(name, run);
    await system.open();
    try {
      for (let from = 0; from < tasks; from += 1000) await system.enqueueNoops(from, Math.min(1000, tasks - from));
      const workers = Array.from({ length: workerCount }, () => system.startWorker());
      try {
        await Promise.all(workers.map((w) => w.ready));
        if (pin) for (const w of workers) taskset(pin === "same" ? "1" : "2", w.pid);
        const workersCpu = () => workers.reduce((sum, w) => sum + cpuSeconds(w.pid), 0);
        // From the first no-op's start (each worker says when, and every NOOP_REPORT_EVERY after) to
        // the last completion the system records: asked every 2 ms once the workers have run them
        // all, and not before, since the count is load on the server being measured.
        while (workers.every((w) => w.firstNoopAt === undefined && w.child.exitCode === null)) await sleep(1);
        const started = { at: performance.now(), workers: workersCpu(), server: serverCpuSeconds(), wal: await walBytes() };
        // The first thousand run in workers whose code is not compiled yet: their rate apart.
        await untilNoops(workers, FIRST, Date.now() + 180_000);
        const firstSeconds = (performance.now() - started.at) / 1000;
        await untilNoops(workers, tasks, Date.now() + 180_000);
        while ((await system.completedJobs()) < tasks) await sleep(2);
        const seconds = (performance.now() - started.at) / 1000;
        const result = {
          perS: tasks / seconds,
          firstPerS: FIRST / firstSeconds,
          restPerS: (tasks - FIRST) / (seconds - firstSeconds),
          workerUs: perJob(workersCpu() - started.workers),
          serverUs: perJob(serverCpuSeconds() - started.server),
          walBytes: ((await walBytes()) - started.wal) / tasks,
        };
        results.push(result);
        console.log(
          `${label} round ${round}: ${fmt(result.perS)}/s (first ${fmt(FIRST)} ${fmt(result.firstPerS)}/s, the rest ${fmt(result.restPerS)}/s); CPU per job: ${workersWord} ${fmt(result.workerUs, 1)} µs, ${serverName} ${fmt(result.serverUs, 1)} µs` +
            (walClient ? `; WAL ${fmt(result.walBytes)} bytes per job` : ""),
        );
        if (overlap) {
          const before = {
            at: performance.now(),
            workers: workersCpu(),
            server: serverCpuSeconds(),
            client: ownCpuSeconds(),
            wal: await walBytes(),
          };
          for (let from = tasks; from < 2 * tasks; from += 1000) await system.enqueueNoops(from, Math.min(1000, 2 * tasks - from));
          await untilNoops(workers, 2 * tasks, Date.now() + 180_000);
          while ((await system.completedJobs()) < 2 * tasks) await sleep(2);
          const overlapped = {
            perS: tasks / ((performance.now() - before.at) / 1000),
            workerUs: perJob(workersCpu() - before.workers),
            serverUs: perJob(serverCpuSeconds() - before.server),
            clientUs: perJob(ownCpuSeconds() - before.client),
            walBytes: ((await walBytes()) - before.wal) / tasks,
          };
          overlapResults.push(overlapped);
          console.log(
            `${label} round ${round}, overlapping: ${fmt(overlapped.perS)}/s; CPU per job: ${workersWord} ${fmt(overlapped.workerUs, 1)} µs, ` +
              `${serverName} ${fmt(overlapped.serverUs, 1)} µs, client ${fmt(overlapped.clientUs, 1)} µs` +
              (walClient ? `; WAL ${fmt(overlapped.walBytes)} bytes per job` : ""),
          );
        }
      } finally {
        await Promise.all(workers.map((w) => w.kill()));
      }
    } finally {
      await system.close();
    }
  }
} finally {
  if (pin) for (const pid of serverPids()) taskset(allCpus, pid);
  await walClient?.end();
}
console.log(
  `${label}, ${fmt(tasks)} no-ops, median of ${rounds}${pin ? `, pinned ${pin}` : ""}: ${fmt(median(results.map((r) => r.perS)))}/s ` +
    `(first ${fmt(FIRST)} ${fmt(median(results.map((r) => r.firstPerS)))}/s, the rest ${fmt(median(results.map((r) => r.restPerS)))}/s); ` +
    `${workersWord} ${fmt(median(results.map((r) => r.workerUs)), 1)} µs, ${serverName} ${fmt(median(results.map((r) => r.serverUs)), 1)} µs per job` +
    (walClient ? `; WAL ${fmt(median(results.map((r) => r.walBytes)))} bytes per job` : ""),
);
if (overlap) {
  const of = (pick: (r: (typeof overlapResults)[number]) => number, digits = 0) => fmt(median(overlapResults.map(pick)), digits);
  console.log(
    `${label}, ${fmt(tasks)} no-ops enqueued while running, median of ${rounds}: ${of((r) => r.perS)}/s; ` +
      `${workersWord} ${of((r) => r.workerUs, 1)} µs, ${serverName} ${of((r) => r.serverUs, 1)} µs, client ${of((r) => r.clientUs, 1)} µs per job` +
      (walClient ? `; WAL ${of((r) => r.walBytes)} bytes per job` : ""),
  );
}
