import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { HistoryView } from "../ports/records.js";
import { sqlitePathOf } from "../runtime/backends.js";
import type { Invocation } from "../runtime/invocation.js";
import { help, intOption, oneOfOption, parseCommand } from "./args.js";
import { CliError } from "./cli-error.js";
import { describeBackend } from "./describe-backend.js";

export const demoHelp = `nenc demo [--backend sqlite|redis|postgres] [--timeout SECONDS]

The recovery demo: starts worker 1 (a real process running examples/recovery-demo/tasks.ts),
submits slowTask(0..2), waits until they run, SIGKILLs worker 1, starts worker 2, and waits for
the three results. Default config, no shortened timings. Exits 0 only if all three came back.

  --backend KIND     where the data lives (sets NENC_BACKEND for itself and both workers; the
                     server settings come from NENC_REDIS_URL / NENC_POSTGRES_URL or the config file)
  --timeout SECONDS  give up after this long (default 120)`;

const BIN = fileURLToPath(new URL("../../bin/nenc.js", import.meta.url));
const TASKS = fileURLToPath(new URL("../../examples/recovery-demo/tasks.ts", import.meta.url));
const TASK_COUNT = 3;

interface WorkerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly runnerId: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly logPath: string;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("demo", argv, { backend: { type: "string" }, timeout: { type: "string" } });
  if (values.help) return help(demoHelp);
  const backendKind = oneOfOption("demo", "backend", values.backend, ["sqlite", "redis", "postgres"] as const);
  const timeoutMs = (intOption("demo", "timeout", values.timeout, 1) ?? 120) * 1000;
  // Through the environment, so that this process and both workers agree without a code change.
  if (backendKind) process.env["NENC_BACKEND"] = backendKind;
  const deadline = Date.now() + timeoutMs;
  const workers: WorkerProcess[] = [];
  try {
    return await runDemo(deadline, workers);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const late = Date.now() >= deadline ? `gave up after ${timeoutMs / 1000} s (--timeout): ` : "";
    out(`\n  FAILED: ${late}${message}`);
    for (const worker of workers) out(`  ${worker.name} output: ${worker.logPath}`);
    return 1;
  } finally {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
  }
}

async function runDemo(deadline: number, workers: WorkerProcess[]): Promise<number> {
  const { app, slowTask } = await import("../../examples/recovery-demo/tasks.js");
  const config = app.config;
  const logDir = join(process.cwd(), ".nenc");
  mkdirSync(logDir, { recursive: true });
  try {
    out(`nenc recovery demo: app ${app.appId}, backend ${describeBackend(config)}`);
    out(
      `  default config: a silent runner is dead after ${config.runnerDeadAfterMs} ms, recovery looks every ${config.recoveryIntervalMs} ms`,
    );
    if (config.backend === "sqlite") removeSqliteFiles(sqlitePathOf(config));
    await (await app.backend()).state.purge();
    out(`  (started from a fresh, purged data store)\n`);

    out("STEP 1: Starting Worker-1...");
    const first = await startWorker("Worker-1", logDir, deadline);
    workers.push(first);
    out(`  Worker-1 started (PID ${first.pid}, runner ${first.runnerId})\n`);

    out(`STEP 2: Submitting ${TASK_COUNT} long-running tasks...`);
    const invocations: Invocation<string>[] = [];
    for (let n = 0; n < TASK_COUNT; n++) {
      invocations.push(await slowTask.invoke(n));
      out(`  -> Submitted slowTask(${n})  id ${invocations[n]?.id}`);
    }
    out("\n  Waiting for Worker-1 to pick up and start running tasks...");
    await until(deadline, "Worker-1 to start running all three tasks", async () => {
      const records = await Promise.all(invocations.map((inv) => inv.record()));
      return records.every((r) => r.status === "RUNNING" && r.owner === first.runnerId);
    });
    out(`  All ${TASK_COUNT} are RUNNING on Worker-1.\n`);

    out("STEP 3: Simulating a worker crash!");
    out(`  X Killing Worker-1 (PID ${first.pid}) with SIGKILL...`);
    const killedAt = Date.now();
    first.child.kill("SIGKILL");
    const ended = await first.exited;
    out(`  X Worker-1 terminated (${ended.signal ? `signal ${ended.signal}` : `exit code ${ended.code}`})\n`);
    out(`  The ${TASK_COUNT} in-progress invocations are now orphaned: no live worker owns them.\n`);

    out("STEP 4: Starting Worker-2 (the recovery worker)...");
    const second = await startWorker("Worker-2", logDir, deadline);
    workers.push(second);
    out(`  Worker-2 started (PID ${second.pid}, runner ${second.runnerId}), ${seconds(Date.now() - killedAt)} after the kill\n`);

    out("STEP 5: Waiting for recovery and task completion...");
    const results = await Promise.all(
      invocations.map(async (inv) => {
        const result = await inv.result({ timeoutMs: Math.max(1, deadline - Date.now()) });
        out(`  OK slowTask completed: ${result}`);
        return result;
      }),
    );
    const expected = results.every((result, n) => result === `task_${n}_completed`);
    out(expected ? `\n  ALL ${TASK_COUNT} TASKS COMPLETED SUCCESSFULLY` : "\n  SOME RESULTS WERE NOT THE EXPECTED ONES");
    out("  Tasks from the crashed worker were recovered automatically!\n");

    out("From kill to re-run (from each invocation's history):");
    for (const [n, inv] of invocations.entries()) out(`  slowTask(${n}): ${rerunSummary(await inv.history(), killedAt, first.runnerId)}`);

    second.child.kill("SIGTERM");
    const stopped = await second.exited;
    out(
      `\n  Worker-2 stopped gracefully (exit code ${stopped.code}). Worker logs: ${relative(process.cwd(), logDir) || "."}/recovery-demo-worker-*.log`,
    );
    return expected ? 0 : 1;
  } finally {
    await app.close();
  }
}

/** What the history says happened after the kill: when recovery took it back, when it ran again. */
export function rerunSummary(history: HistoryView[], killedAt: number, deadRunner: string): string {
  const since = (at: number) => seconds(at - killedAt);
  const recovered = history.find((h) => h.status === "RUNNING_RECOVERY" && h.at >= killedAt);
  const firstAttempt = history.find((h) => h.status === "RUNNING" && h.runnerId === deadRunner)?.attempt ?? 1;
  const rerun = history.find((h) => h.status === "RUNNING" && h.attempt > firstAttempt);
  if (!rerun) return "no re-run found in the history";
  const where = rerun.runnerId ? ` on ${rerun.runnerId}` : "";
  return (
    `${recovered ? `taken back (RUNNING_RECOVERY) ${since(recovered.at)} after the kill, ` : ""}` +
    `re-run (attempt ${rerun.attempt}) started ${since(rerun.at)} after the kill${where}`
  );
}

function startWorker(name: string, logDir: string, deadline: number): Promise<WorkerProcess> {
  const logPath = join(logDir, `recovery-demo-${name.toLowerCase()}.log`);
  const log = createWriteStream(logPath);
  const child = spawn(process.execPath, [BIN, "worker", "--app", TASKS], { stdio: ["ignore", "pipe", "pipe"], env: process.env });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      log.end();
      resolve({ code, signal });
    });
  });
  return new Promise<WorkerProcess>((resolve, reject) => {
    let seen = "";
    let stderr = "";
    const timer = setTimeout(() => reject(new CliError(`${name} did not start in time`)), Math.max(1, deadline - Date.now()));
    child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /nenc worker (\S+) started/.exec(seen);
      if (match?.[1] && child.pid !== undefined) {
        clearTimeout(timer);
        resolve({ name, child, pid: child.pid, runnerId: match[1], exited, logPath });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new CliError(
          `${name} exited before it started (${signal ?? `exit code ${code}`}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        ),
      );
    });
  });
}

async function until(deadline: number, what: string, probe: () => Promise<boolean>): Promise<void> {
  while (!(await probe())) {
    if (Date.now() > deadline) throw new CliError(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A fresh file for the demo's own app: also gets rid of one an older nenc left behind. */
function removeSqliteFiles(path: string): void {
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}
