import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { STARTED_STATUS } from "../src/core/status.js";
import { planTransition, type TransitionRequest } from "../src/core/transition.js";
import type { Backend } from "../src/ports/backend.js";
import type { ClaimedInvocation, NewInvocation } from "../src/ports/records.js";
import { clockTicks } from "./clock-ticks.js";

export const median = (xs: number[]) => percentile(xs, 50);

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `nenc worker` as a real child process; `ready` resolves when it says it started. */
export function startWorker(app: string, env: Record<string, string>, args: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, ["bin/nenc.js", "worker", "--app", app, ...args], {
    env: { ...process.env, NENC_LOG_TO_CONSOLE: "false", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("started")) resolve();
    });
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`worker exited (${code}) before it started:\n${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    ready,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** Pids of the processes whose name starts with `name` (a server's processes: redis-server, postgres). */
export function pidsNamed(name: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith(name);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** CPU seconds used so far by all the processes named so (those that exit meanwhile drop out). */
export function cpuSecondsNamed(name: string): number {
  return pidsNamed(name).reduce((sum, pid) => {
    try {
      return sum + cpuSeconds(pid);
    } catch {
      return sum;
    }
  }, 0);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The value after `--name` on the command line, or `fallback`. */
export function option(name: string, fallback: string): string {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "n/a";
}

/**
 * For benches that drive the backend ports with no runtime: register `runnerId` as a live runner
 * and make `count` no-op invocations ready at `now` (arguments from `args`, "[]" by default).
 */
export async function portBenchSetUp(
  backend: Backend,
  runnerId: string,
  count: number,
  now: number,
  args: (i: number) => string = () => "[]",
): Promise<NewInvocation[]> {
  await backend.orchestrator.registerRunner(
    { id: runnerId, kind: "bench", hostId: "bench", hostname: "bench", pid: process.pid, pidStart: null, startedAt: now },
    now,
  );
  return Array.from({ length: count }, (_, i) => ({
    id: `inv-${i}`,
    taskId: "noop",
    callId: `noop:${i}`,
    args: args(i),
    parentId: null,
    createdAt: now,
    readyAt: now,
  }));
}

/** A worker's final write for invocations it claimed to start: RUNNING -> SUCCESS, result null. */
export function succeeded(claimed: readonly ClaimedInvocation[], runnerId: string, at: number): TransitionRequest[] {
  return claimed.map((c) =>
    planTransition({ id: c.id, status: STARTED_STATUS, attempt: c.attempt, owner: runnerId }, "SUCCESS", {
      by: runnerId,
      at,
      result: "null",
    }),
  );
}
