// Real `nenc` child processes for the tests: workers to kill, stop and pause, and one-shot commands.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const NENC_BIN = fileURLToPath(new URL("../../bin/nenc.js", import.meta.url));
export const FIXTURE_TASKS = fileURLToPath(new URL("../fixtures/tasks.ts", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** This process's environment without any NENC_ setting, so a child sees only what a test gives it. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("NENC_")) env[key] = value;
  }
  return { ...env, ...extra };
}

export class WorkerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  #output = "";
  #runnerId = "";

  constructor(child: ChildProcess) {
    this.child = child;
    const append = (chunk: Buffer) => (this.#output += chunk.toString());
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get runnerId(): string {
    return this.#runnerId;
  }

  /** Everything it printed so far, stdout and stderr interleaved. */
  get output(): string {
    return this.#output;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async started(timeoutMs: number): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /nenc worker (\S+) started/.exec(this.#output);
      if (match?.[1]) {
        this.#runnerId = match[1];
        return this;
      }
      if (!this.running) throw new Error(`worker ${this.pid} exited before it started:\n${this.#output}`);
      if (Date.now() > deadline) throw new Error(`worker ${this.pid} did not start within ${timeoutMs} ms:\n${this.#output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM and wait: the graceful stop. */
  async stop(): Promise<Exit> {
    this.signal("SIGCONT");
    this.signal("SIGTERM");
    return this.exited;
  }

  async kill(): Promise<Exit> {
    this.signal("SIGKILL");
    return this.exited;
  }
}

export interface WorkerOptions {
  /** The task module (default the fixture tasks). */
  readonly app?: string;
  readonly args?: string[];
  readonly timeoutMs?: number;
}

/** Spawn `nenc worker --app <module>` with exactly `env` (plus console logging on); not waited for. */
export function spawnWorker(env: Record<string, string>, options: WorkerOptions = {}): WorkerProcess {
  const child = spawn(process.execPath, [NENC_BIN, "worker", "--app", options.app ?? FIXTURE_TASKS, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: cleanEnv({ NENC_LOG_TO_CONSOLE: "true", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new WorkerProcess(child);
}

/** Spawn a worker and wait until it is up. */
export function startWorker(env: Record<string, string>, options: WorkerOptions = {}): Promise<WorkerProcess> {
  return spawnWorker(env, options).started(options.timeoutMs ?? 60_000);
}

export interface CommandResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/** Run one `nenc` command to its end. */
export function runNenc(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [NENC_BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: cleanEnv(options.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nenc ${args.join(" ")} did not finish within ${options.timeoutMs ?? 60_000} ms:\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Every worker a test started, so that none outlives it whatever the test's outcome. */
export class WorkerPool {
  readonly #workers: WorkerProcess[] = [];

  /** Spawn a worker and wait until it is up. */
  async start(env: Record<string, string>, options: WorkerOptions = {}): Promise<WorkerProcess> {
    return this.spawn(env, options).started(options.timeoutMs ?? 60_000);
  }

  /** Spawn a worker without waiting (one whose death is the point may never print its start line). */
  spawn(env: Record<string, string>, options: WorkerOptions = {}): WorkerProcess {
    const worker = spawnWorker(env, options);
    this.#workers.push(worker);
    return worker;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.kill()));
  }
}
