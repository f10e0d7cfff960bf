import { fork, type ChildProcess } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NencError, ProcessCrashError, RetryError, SerializationError, TaskFailedError, UnknownTaskError } from "../core/errors.js";
import { deserialize } from "../core/serializer.js";
import type { ClaimedInvocation } from "../ports/records.js";
import type { Nenc } from "./app.js";
import type { TaskContext } from "./context.js";
import type { Done, Executor, Outcome } from "./executor.js";
import type { ChildMessage, RunMessage } from "./process-child.js";

const CHILD_ENTRY = fileURLToPath(new URL("./process-child.mjs", import.meta.url));

/** nenc's own error classes a task may throw; restored by name so retry rules still see them. */
const NENC_ERRORS = [RetryError, UnknownTaskError, SerializationError, TaskFailedError, ProcessCrashError, NencError];

export interface ProcessExecutorOptions {
  /** The module that defines the app (a path or file URL); every child imports it. Required. */
  readonly appModule?: string | undefined;
  /** Node flags for the children (default none). */
  readonly execArgv?: readonly string[];
}

/** Told a child or an error (load failure, abort, stop) when one becomes free. */
type Waiter = (grant: PoolChild | Error) => void;

/**
 * Runs each task in one of `capacity` child processes, for CPU-bound or untrusted work: a task
 * that spins, leaks or exits cannot stall or take down the runner, whose event loop stays free for
 * claims, heartbeats and recovery.
 *
 * Pool: every child is started at start() (warm) and imports the app module. A child is starting
 * until it says ready, then idle or busy with exactly one invocation. A child that dies (SIGKILL,
 * OOM, process.exit in a task) is replaced at once and its invocation ends with ProcessCrashError;
 * one whose invocation is aborted (the runner stopped, or lost the invocation) is SIGKILLed and
 * replaced the same way. stop() kills every child and waits until each has exited.
 */
export class ProcessExecutor implements Executor {
  readonly kind = "process";
  readonly capacity: number;
  readonly #app: Nenc;
  readonly #options: ProcessExecutorOptions;
  readonly #children = new Set<PoolChild>();
  readonly #idle: PoolChild[] = [];
  readonly #waiting: Waiter[] = [];
  #appModule = "";
  #stopping = false;
  #failedStarts = 0;
  #respawnTimer: NodeJS.Timeout | undefined;
  /** Last resort when the parent exits without stop(): children must not outlive it. */
  readonly #killAllOnExit = (): void => {
    for (const child of this.#children) child.kill("the runner process exited");
  };

  constructor(app: Nenc, capacity: number, options: ProcessExecutorOptions = {}) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new NencError(`the process runner needs a capacity of at least 1, got ${capacity}`);
    this.#app = app;
    this.capacity = capacity;
    this.#options = options;
  }

  /** Pids of the child processes alive now. */
  get pids(): number[] {
    return [...this.#children].map((child) => child.pid);
  }

  async start(): Promise<void> {
    this.#appModule = appModulePath(this.#options.appModule);
    process.on("exit", this.#killAllOnExit);
    const children = Array.from({ length: this.capacity }, () => this.#spawn());
    try {
      await Promise.all(children.map((child) => child.ready));
    } catch (error) {
      await this.stop();
      throw new NencError(`the process runner could not start its child processes: ${(error as Error).message}`);
    }
    for (const child of children) this.#release(child);
  }

  run(invocation: ClaimedInvocation, context: TaskContext, done: Done): void {
    this.#outcome(invocation, context).then(done, (error: unknown) => done({ ok: false, error }));
  }

  async #outcome(invocation: ClaimedInvocation, context: TaskContext): Promise<Outcome> {
    const grant = await this.#acquire(context.signal);
    if (grant instanceof Error) return { ok: false, error: grant };
    const child = grant;
    if (context.signal.aborted) {
      this.#release(child);
      return { ok: false, error: new NencError(`${invocation.taskId} ${invocation.id} was aborted before it started`) };
    }
    const onAbort = (): void => child.kill(`${invocation.taskId} ${invocation.id} was aborted (the runner stopped or lost it)`);
    context.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const done = await child.run(invocation, context);
      if (done.ok) return done;
      return { ok: false, error: "text" in done ? this.#decodeError(done.text, done.className, invocation.taskId) : done.error };
    } finally {
      context.signal.removeEventListener("abort", onAbort);
      this.#release(child);
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#respawnTimer);
    for (const waiter of this.#waiting.splice(0)) waiter(new NencError("the process runner stopped"));
    this.#idle.length = 0;
    const children = [...this.#children];
    for (const child of children) child.kill("the process runner stopped");
    await Promise.all(children.map((child) => child.exited));
    process.off("exit", this.#killAllOnExit);
  }

  #spawn(): PoolChild {
    const child = new PoolChild(this.#appModule, this.#options.execArgv ?? [], (exited) => this.#onExit(exited));
    this.#children.add(child);
    return child;
  }

  #onExit(child: PoolChild): void {
    this.#children.delete(child);
    const idle = this.#idle.indexOf(child);
    if (idle >= 0) this.#idle.splice(idle, 1);
    if (!this.#stopping && child.wasReady) this.#replace();
  }

  /** Start a child in place of one that died; if it cannot load the app, waiting tasks fail with why. */
  #replace(): void {
    const child = this.#spawn();
    child.ready.then(
      () => {
        this.#failedStarts = 0;
        this.#release(child);
      },
      (error: unknown) => {
        if (this.#stopping) return;
        const reason = new NencError(`a replacement child process could not start: ${(error as Error).message}`);
        this.#app.logger.warn(`nenc: ${reason.message}; trying again`);
        for (const waiter of this.#waiting.splice(0)) waiter(reason);
        const delay = Math.min(100 * 2 ** this.#failedStarts++, 5000);
        this.#respawnTimer = setTimeout(() => this.#replace(), delay);
      },
    );
  }

  #acquire(signal: AbortSignal): Promise<PoolChild | Error> {
    if (this.#stopping) return Promise.resolve(new NencError("the process runner stopped"));
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    return new Promise((resolve) => {
      const waiter: Waiter = (grant) => {
        signal.removeEventListener("abort", onAbort);
        resolve(grant);
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        resolve(new NencError("aborted while waiting for a free child process"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #release(child: PoolChild): void {
    if (this.#stopping || !child.alive) return;
    const waiter = this.#waiting.shift();
    if (waiter) waiter(child);
    else this.#idle.push(child);
  }

  /** Rebuild the task's error, with its class when it is nenc's or one the task retries on. */
  #decodeError(text: string, className: string | null, taskId: string): unknown {
    let error: unknown;
    try {
      error = deserialize(text);
    } catch (cause) {
      return new SerializationError(`the error of ${taskId} could not be read back from its child process: ${(cause as Error).message}`);
    }
    if (!(error instanceof Error) || !className) return error;
    const retryClasses = this.#app.getTask(taskId)?.retryPolicy.retryFor.filter((kind) => typeof kind === "function") ?? [];
    const known = [...NENC_ERRORS, ...retryClasses].find((kind) => kind.name === className);
    if (known) Object.setPrototypeOf(error, known.prototype as object);
    return error;
  }
}

function appModulePath(appModule: string | undefined): string {
  if (!appModule) {
    throw new NencError(
      'runner "process" needs the path of the module that defines the app, so its child processes can load the tasks: ' +
        "pass appModule to startWorker, or run `nenc worker --app <module>`",
    );
  }
  if (appModule.startsWith("file:")) return fileURLToPath(appModule);
  return isAbsolute(appModule) ? appModule : resolve(appModule);
}

/** What a child reports for one invocation: an outcome, or a serialized error to rebuild. */
type ChildDone = Outcome | { readonly ok: false; readonly text: string; readonly className: string | null };

interface Running {
  readonly invocation: ClaimedInvocation;
  readonly context: TaskContext;
  readonly resolve: (done: ChildDone) => void;
}

/** One child process of the pool and the invocation it is running, if any. */
class PoolChild {
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  readonly #process: ChildProcess;
  #running: Running | undefined;
  #readyState: "starting" | "ready" | "failed" = "starting";
  #killedBecause: string | undefined;
  #exited = false;
  #settleReady!: (error?: Error) => void;
  #settleExited!: () => void;

  constructor(appModule: string, execArgv: readonly string[], onExit: (child: PoolChild) => void) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (error) => (error ? reject(error) : resolve());
    });
    this.ready.catch(() => {}); // a failed start is reported where ready is awaited
    this.exited = new Promise<void>((resolve) => (this.#settleExited = resolve));
    this.#process = fork(CHILD_ENTRY, [appModule], { execArgv: [...execArgv], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.#process.on("message", (message: ChildMessage) => this.#onMessage(message));
    this.#process.on("error", (error) => {
      // Spawning failed (no exit follows) or a signal could not be sent (the child is gone anyway).
      if (this.#process.pid === undefined) this.#onExit(null, null, error, onExit);
    });
    this.#process.on("exit", (code, signal) => this.#onExit(code, signal, undefined, onExit));
  }

  get pid(): number {
    return this.#process.pid ?? -1;
  }

  get wasReady(): boolean {
    return this.#readyState === "ready";
  }

  get alive(): boolean {
    return !this.#exited && this.#killedBecause === undefined;
  }

  run(invocation: ClaimedInvocation, context: TaskContext): Promise<ChildDone> {
    return new Promise<ChildDone>((resolve) => {
      if (!this.alive) {
        resolve({ ok: false, error: this.#crash(invocation) });
        return;
      }
      this.#running = { invocation, context, resolve };
      const message: RunMessage = { type: "run", invocation, attempt: context.attempt, runnerId: context.runnerId };
      this.#process.send(message, (error) => {
        if (error) this.kill(`sending ${invocation.taskId} ${invocation.id} to it failed: ${error.message}`);
      });
    });
  }

  /** SIGKILL; the invocation it was running, if any, ends when the exit is seen. */
  kill(because: string): void {
    if (this.#exited) return;
    this.#killedBecause ??= because;
    this.#process.kill("SIGKILL");
  }

  #onMessage(message: ChildMessage): void {
    switch (message.type) {
      case "ready":
        this.#readyState = "ready";
        this.#settleReady();
        return;
      case "failed":
        this.#readyState = "failed";
        this.#settleReady(new NencError(message.message));
        return;
      case "log":
        if (this.#running?.invocation.id === message.id) this.#running.context.log(message.level, message.message);
        return;
      case "done": {
        const running = this.#running;
        if (running?.invocation.id !== message.id) return;
        this.#running = undefined;
        running.resolve(
          message.ok ? { ok: true, result: message.result } : { ok: false, text: message.error, className: message.className },
        );
        return;
      }
    }
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null, error: Error | undefined, onExit: (child: PoolChild) => void): void {
    if (this.#exited) return;
    this.#exited = true;
    const how = error ? `failed (${error.message})` : `exited with ${signal ?? `code ${code}`}`;
    if (this.#readyState === "starting") {
      this.#readyState = "failed";
      this.#settleReady(new NencError(`child process ${this.pid} ${how} before it loaded the app`));
    }
    const running = this.#running;
    this.#running = undefined;
    running?.resolve({ ok: false, error: this.#crash(running.invocation, how) });
    this.#settleExited();
    onExit(this);
  }

  #crash(invocation: ClaimedInvocation, how = "was gone"): ProcessCrashError {
    const what = `child process ${this.pid} ${how} while running ${invocation.taskId}`;
    return new ProcessCrashError(this.#killedBecause ? `${what}: it was killed because ${this.#killedBecause}` : what);
  }
}
