/**
 * `npm run chaos -- [--backend sqlite|redis|postgres] [--jobs N] [--workers W]`: worker processes
 * SIGKILLed and SIGSTOPped at random while N jobs (default 20,000) run, on one backend (default
 * sqlite; the servers of NENC_REDIS_URL and NENC_POSTGRES_URL, or the local ones), with W workers
 * (default 3, concurrency 20 each). Every 0.5 to 1.2 s one worker, chosen at random, is SIGKILLed
 * (three times in four; a new one starts in its place) or SIGSTOPped for 2 to 12 s, then continued
 * (stopped longer than runnerDeadAfterMs, 7 s by default, it has been declared dead and its work
 * taken back, and must find itself fenced off). The jobs are enqueued in batches of 100 over the
 * first seconds.
 * Once every job has succeeded (or after 4 minutes) it checks that each job succeeded with its
 * own result, and that no attempt of any job ever started on two runners. It prints what it did and
 * found, and exits with 1 if any check failed. It runs in minutes, so it is not part of `npm test`.
 * The app's data is removed at the end.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { option } from "../../bench/support.js";
import { deserialize } from "../../src/core/serializer.js";
import { sleep } from "../conformance/harness.js";
import { spawnWorker, type WorkerProcess } from "../process/nenc-process.js";

function wholeNumber(name: string, fallback: string): number {
  const value = Number(option(name, fallback));
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: expected a whole number from 1, got ${option(name, fallback)}`);
  return value;
}

const backend = option("backend", "sqlite");
if (!["sqlite", "redis", "postgres"].includes(backend)) throw new Error(`--backend: expected sqlite, redis or postgres, got ${backend}`);
const jobs = wholeNumber("jobs", "20000");
const workerCount = wholeNumber("workers", "3");

const dir = mkdtempSync(join(tmpdir(), "nenc-chaos-"));
const runLog = join(dir, "runs.log");
writeFileSync(runLog, "");
/** The settings of this process's app and of every worker: the caller's NENC_* (server URLs), then the run's own. */
const env: Record<string, string> = {
  ...Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[0].startsWith("NENC_") && entry[1] !== undefined),
  ),
  NENC_BACKEND: backend,
  NENC_APP_ID: `chaos-${process.pid}`,
  NENC_SQLITE_PATH: join(dir, "nenc.db"),
  NENC_LOG_TO_CONSOLE: "false",
  CHAOS_LOG: runLog,
};
// Set before the task module loads: its app reads them.
Object.assign(process.env, env);
const { app, double } = await import("./tasks.js");
const store = (await app.backend()).state;

const workers = new Set<WorkerProcess>();
function startWorker(): void {
  const worker = spawnWorker(env, { app: "test/chaos/tasks.ts", args: ["--concurrency", "20"] });
  workers.add(worker);
  void worker.exited.then(({ code, signal }) => {
    workers.delete(worker);
    // Only this script's SIGKILLs end a worker: anything else is worth seeing.
    if (signal !== "SIGKILL") console.log(`a worker exited on its own (code ${code}, signal ${signal}):\n${worker.output}`);
  });
}

const done = { kills: 0, stops: 0 };
let chaosOn = true;

async function chaos(): Promise<void> {
  while (chaosOn) {
    await sleep(500 + Math.random() * 700);
    const list = [...workers].filter((w) => w.running);
    const victim = list[Math.floor(Math.random() * list.length)];
    if (!chaosOn || !victim) continue;
    if (Math.random() < 0.75) {
      victim.signal("SIGKILL");
      done.kills++;
      startWorker();
    } else {
      victim.signal("SIGSTOP");
      done.stops++;
      setTimeout(() => victim.signal("SIGCONT"), 2000 + Math.random() * 10_000);
    }
  }
}

let failures = 0;
const fail = (message: string) => {
  if (failures++ < 10) console.log(`FAIL ${message}`);
};

try {
  for (let i = 0; i < workerCount; i++) startWorker();
  const chaosDone = chaos();
  const expected = new Map<string, number>();
  const started = Date.now();
  for (let n = 0; n < jobs; n += 100) {
    const batch = Array.from({ length: Math.min(100, jobs - n) }, (_, i) => [n + i] as [number]);
    (await double.parallelize(batch)).forEach((invocation, i) => expected.set(invocation.id, 2 * (n + i)));
    await sleep(40);
  }
  const deadline = Date.now() + 240_000;
  while (((await store.counts()).SUCCESS ?? 0) < jobs && Date.now() < deadline) await sleep(500);
  const seconds = (Date.now() - started) / 1000;
  chaosOn = false;
  await chaosDone;

  for (const [id, result] of expected) {
    const record = await store.get(id);
    if (record?.status !== "SUCCESS") fail(`${id} is ${record?.status ?? "missing"}, not SUCCESS`);
    else if (record.result === null || deserialize(record.result) !== result) fail(`${id} answered ${record.result}, not ${result}`);
  }
  const runnersOfAttempt = new Map<string, Set<string>>();
  const lines = readFileSync(runLog, "utf8").split("\n").filter(Boolean);
  for (const line of lines) {
    const [id, attempt, runner, pid] = line.split(" ");
    const key = `${id} attempt ${attempt}`;
    runnersOfAttempt.set(key, (runnersOfAttempt.get(key) ?? new Set()).add(`${runner} (pid ${pid})`));
  }
  for (const [key, runners] of runnersOfAttempt) if (runners.size > 1) fail(`${key} started on ${[...runners].join(" and ")}`);
  console.log(
    `${backend}: ${jobs} jobs in ${seconds.toFixed(0)} s, ${workerCount} workers; ${done.kills} SIGKILLs, ${done.stops} SIGSTOPs; ` +
      `${lines.length} runs started (${lines.length - jobs} again after a kill or stop); ${failures} failed checks`,
  );
} finally {
  chaosOn = false;
  await Promise.all(
    [...workers].map((worker) => {
      worker.signal("SIGCONT");
      return worker.kill();
    }),
  );
  await store.purge();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failures > 0 ? 1 : 0);
