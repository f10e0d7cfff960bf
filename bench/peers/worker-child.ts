import { spawn, type ChildProcess } from "node:child_process";
import { startWorker } from "../support.js";
import { NOOP_REPORT_EVERY } from "./report.js";

/**
 * A worker running as a real child process, as the driver sees it: when it is ready, when its
 * first no-op started, and when each probe or hold job started (lines from ./report.ts).
 */
export class WorkerChild {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  firstNoopAt: number | undefined;
  /** No-op jobs run here, as last reported (a multiple of NOOP_REPORT_EVERY). */
  noops = 0;
  #noopWaiters: (() => void)[] = [];
  readonly #starts = new Map<string, number>();
  readonly #waiters = new Map<string, () => void>();
  #output = "";

  constructor(child: ChildProcess, readyText: string, ready?: Promise<void>) {
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) =>
      child.once("exit", () => {
        live.delete(this);
        resolve();
      }),
    );
    let pending = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) this.#onLine(line);
    });
    child.stderr?.on("data", (chunk: Buffer) => this.#keep(chunk.toString()));
    this.ready =
      ready ??
      new Promise<void>((resolve, reject) => {
        const check = () => this.#output.includes(readyText) && resolve();
        child.stdout?.on("data", check);
        child.once("exit", (code, signal) => reject(new Error(`worker exited (${code ?? signal}) before it was ready:\n${this.#output}`)));
      });
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Last lines the worker printed, for error messages. */
  get output(): string {
    return this.#output;
  }

  /** When the job with this key started here, waiting at most until `deadline` (epoch ms). */
  async startOf(key: string, deadline: number): Promise<number | undefined> {
    const seen = this.#starts.get(key);
    if (seen !== undefined) return seen;
    const wait = deadline - Date.now();
    if (wait <= 0) return undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.#waiters.set(key, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#waiters.delete(key);
    return this.#starts.get(key);
  }

  /**
   * Resolves once this worker reported its last count of no-ops run up to `count` (it reports every
   * NOOP_REPORT_EVERY), or at `deadline` (epoch ms), or when it exits: without any query to the system.
   */
  async untilNoops(count: number, deadline: number): Promise<void> {
    const reported = Math.floor(count / NOOP_REPORT_EVERY) * NOOP_REPORT_EVERY;
    while (this.noops < reported && Date.now() < deadline && this.child.exitCode === null && this.child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(100, Math.max(0, deadline - Date.now())));
        this.#noopWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  hasStarted(key: string): boolean {
    return this.#starts.has(key);
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }

  #onLine(line: string): void {
    this.#keep(`${line}\n`);
    const [tag, kind, a, b] = line.split(" ");
    if (tag !== "bench") return;
    if (kind === "first" && a !== undefined) this.firstNoopAt ??= Number(a);
    if (kind === "noops" && a !== undefined) {
      this.noops = Math.max(this.noops, Number(a));
      for (const wake of this.#noopWaiters.splice(0)) wake();
    }
    if (kind === "start" && a !== undefined && b !== undefined && !this.#starts.has(a)) {
      this.#starts.set(a, Number(b));
      this.#waiters.get(a)?.();
    }
  }

  #keep(text: string): void {
    this.#output = (this.#output + text).slice(-4000);
  }
}

const live = new Set<WorkerChild>();

/** SIGKILL every worker this process started that is still running (on the driver's way out). */
export function killLiveWorkers(): void {
  for (const worker of live) worker.child.kill("SIGKILL");
}

/** A peer's worker script (bench/peers/<peer>-worker.ts) under tsx, ready when it says "bench ready". */
export function spawnPeerWorker(script: string, env: Record<string, string>): WorkerChild {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new WorkerChild(child, "bench ready");
}

/** `nenc worker` through bench/support.ts, ready when it says it started. */
export function spawnNencWorker(app: string, env: Record<string, string>, args: string[]): WorkerChild {
  const worker = startWorker(app, env, args);
  return new WorkerChild(worker.child, "started", worker.ready);
}
