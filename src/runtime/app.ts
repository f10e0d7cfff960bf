import {
  APP_KEYS,
  resolveAppConfig,
  resolveTaskConfig,
  type AppConfig,
  type ConfigInputs,
  type FileConfig,
  type Resolved,
  type TaskConfig,
} from "../core/config.js";
import { systemClock, type Clock } from "../core/clock.js";
import { ConfigError, InvocationNotFoundError, NencError } from "../core/errors.js";
import { isFinal } from "../core/status.js";
import { capabilityProblems, type Backend } from "../ports/backend.js";
import type { InvocationRecord, NewInvocation } from "../ports/records.js";
import { createBackend } from "./backends.js";
import { taskContext, type TaskContext } from "./context.js";
import { Invocation } from "./invocation.js";
import { Logger } from "./logger.js";
import { Task, type TaskOptions } from "./task.js";
import { Worker, type WorkerOptions } from "./worker.js";

type BackendKind = AppConfig["backend"];

/** Where the app keeps its data: a kind (settings from config), a kind with its settings, or a built backend. */
export type BackendOption =
  | BackendKind
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly path?: string }
  | { readonly kind: "redis"; readonly url?: string }
  | { readonly kind: "postgres"; readonly url?: string }
  | Backend;

type CodeConfig = Partial<Omit<AppConfig, "backend" | "retryFor">>;

export interface NencOptions extends CodeConfig {
  readonly backend?: BackendOption;
  /** Task keys set for every task of the app (each task may override them). */
  readonly retryFor?: readonly string[];
  readonly clock?: Clock;
  /** Environment to read NENC_* from (default process.env). */
  readonly env?: Record<string, string | undefined>;
  /** Directory holding nenc.config.json or package.json (default the working directory). */
  readonly cwd?: string;
  /** A config file already read, or null for none (default: look in cwd). */
  readonly configFile?: FileConfig | null;
}

/** One app: its config, its tasks, and the backend they share with every other process of the app. */
export class Nenc {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly resolved: Resolved<AppConfig>;
  readonly #inputs: ConfigInputs;
  readonly #tasks = new Map<string, Task<never[], unknown>>();
  readonly #givenBackend: Backend | undefined;
  #backend: Promise<Backend> | undefined;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #unsubscribe: (() => void) | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #checking = false;
  #checkAgain = false;
  /** No pass starts before this (performance.now()); a wake-up meanwhile is taken by #nextPass. */
  #restUntil = 0;
  #nextPass: NodeJS.Timeout | undefined;
  readonly #workers = new Set<Worker>();
  /** Each task's options from code, so its resolved config can be shown with sources. */
  readonly #taskCode = new Map<string, Record<string, unknown>>();

  constructor(options: NencOptions = {}) {
    const { backend, clock, env, cwd, configFile, ...code } = options;
    const codeValues: Record<string, unknown> = { ...code };
    if (backend !== undefined && !isBackend(backend)) {
      const kind = typeof backend === "string" ? backend : backend.kind;
      codeValues["backend"] = kind;
      if (typeof backend === "object" && "path" in backend) codeValues["sqlitePath"] = backend.path;
      if (typeof backend === "object" && "url" in backend) codeValues[kind === "redis" ? "redisUrl" : "postgresUrl"] = backend.url;
    }
    this.#givenBackend = backend !== undefined && isBackend(backend) ? backend : undefined;
    const problems = this.#givenBackend ? capabilityProblems(this.#givenBackend.capabilities) : [];
    if (problems.length) throw new ConfigError("backend", "code", `the backend given has ${problems.join("; ")}`);
    this.#inputs = {
      code: codeValues,
      env: env ?? process.env,
      cwd: cwd ?? process.cwd(),
      ...(configFile !== undefined ? { file: configFile } : {}),
    };
    this.resolved = resolveAppConfig(this.#inputs);
    this.clock = clock ?? systemClock;
    this.logger = new Logger(() => ({ level: this.config.logLevel, toConsole: this.config.logToConsole }));
  }

  get config(): AppConfig {
    return this.resolved.values;
  }

  get appId(): string {
    return this.config.appId;
  }

  /** Define a task. Its name is how every process of the app finds it, so keep it stable. */
  task<Args extends unknown[], Result>(
    name: string,
    fn: (...args: Args) => Result | Promise<Result>,
    options: TaskOptions = {},
  ): Task<Args, Result> {
    if (typeof name !== "string" || name === "") throw new NencError("a task needs a non-empty name");
    if (typeof fn !== "function") throw new NencError(`task ${name}: expected a function, got ${typeof fn}`);
    if (this.#tasks.has(name)) throw new NencError(`task ${name} is already defined in app ${this.appId}`);
    const task = new Task<Args, Result>(this, name, fn, options);
    this.#tasks.set(name, task as unknown as Task<never[], unknown>);
    return task;
  }

  getTask(name: string): Task<unknown[], unknown> | undefined {
    return this.#tasks.get(name) as Task<unknown[], unknown> | undefined;
  }

  get tasks(): readonly Task<unknown[], unknown>[] {
    return [...this.#tasks.values()] as Task<unknown[], unknown>[];
  }

  resolveTaskConfig(name: string, code: Record<string, unknown>): TaskConfig {
    this.#taskCode.set(name, code);
    return resolveTaskConfig(name, this.resolved, code, this.#inputs).values;
  }

  /** A task's resolved options and where each came from (its code options included, once defined). */
  resolveTaskConfigWithSources(name: string): Resolved<TaskConfig> {
    return resolveTaskConfig(name, this.resolved, this.#taskCode.get(name) ?? {}, this.#inputs);
  }

  /** A handle on an invocation from its id, for instance one made by another process. */
  invocation<Result = unknown>(id: string): Invocation<Result> {
    return new Invocation<Result>(this, id);
  }

  /** The running task's context, or undefined outside a task. */
  current(): TaskContext | undefined {
    return taskContext.getStore();
  }

  /** The backend, opened on first use. */
  backend(): Promise<Backend> {
    this.#backend ??= this.#givenBackend ? Promise.resolve(this.#givenBackend) : createBackend(this.config);
    return this.#backend;
  }

  async register(invocations: NewInvocation[]): Promise<Invocation[]> {
    const backend = await this.backend();
    await backend.orchestrator.register(invocations);
    return invocations.map((inv) => new Invocation(this, inv.id));
  }

  /** Start a worker in this process; `nenc worker` does the same. */
  async startWorker(options: WorkerOptions = {}): Promise<Worker> {
    const worker = new Worker(this, options);
    this.#workers.add(worker);
    worker.onStop(() => this.#workers.delete(worker));
    await worker.start();
    return worker;
  }

  /** Resolves with the record once final; the one watcher wakes every waiter of the app. */
  async waitUntilFinal(id: string, timeoutMs?: number): Promise<InvocationRecord> {
    const backend = await this.backend();
    const first = await backend.state.get(id);
    if (!first) throw new InvocationNotFoundError(id);
    if (isFinal(first.status)) return first;
    return new Promise<InvocationRecord>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done: Waiter = (record) => {
        if (timer) clearTimeout(timer);
        resolve(record);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#removeWaiter(id, done);
          reject(new NencError(`invocation ${id} was not final after ${timeoutMs} ms`));
        }, timeoutMs);
      }
      let set = this.#waiters.get(id);
      if (!set) this.#waiters.set(id, (set = new Set()));
      set.add(done);
      this.#watch(backend);
    });
  }

  #watch(backend: Backend): void {
    this.#unsubscribe ??= backend.broker.subscribe(() => void this.#checkWaiters());
    this.#pollTimer ??= setInterval(() => void this.#checkWaiters(), this.config.pollIntervalMs);
  }

  #removeWaiter(id: string, done: Waiter): void {
    const set = this.#waiters.get(id);
    set?.delete(done);
    if (set?.size === 0) this.#waiters.delete(id);
    if (this.#waiters.size === 0) this.#unwatch();
  }

  #unwatch(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    clearTimeout(this.#nextPass);
    this.#nextPass = undefined;
  }

  async #checkWaiters(): Promise<void> {
    // A wake-up or retry timer that fires after close() must not open a new backend.
    if (!this.#backend) return;
    if (this.#checking) {
      this.#checkAgain = true;
      return;
    }
    const rest = this.#restUntil - performance.now();
    if (rest > 0) {
      this.#passIn(rest);
      return;
    }
    this.#checking = true;
    const started = performance.now();
    try {
      const backend = await this.backend();
      const ids = [...this.#waiters.keys()];
      // One call per chunk tells which are final; only those are read in full, concurrently.
      for (let i = 0; i < ids.length; i += WAITER_CHUNK) {
        const final = await backend.state.finalAmong(ids.slice(i, i + WAITER_CHUNK));
        const reads = await Promise.allSettled(final.map((id) => backend.state.get(id)));
        reads.forEach((read, j) => this.#settleWaiters(final[j]!, read));
      }
    } catch (error) {
      this.logger.warn(`nenc: checking for results failed, will retry: ${(error as Error).message}`);
    } finally {
      this.#checking = false;
      if (this.#waiters.size === 0) this.#unwatch();
      // Each pass asks after every waited invocation: with thousands waiting, passes back to back
      // would starve everything else (the workers of this process too), so rest as long as the
      // last pass took before the next. On SQLite a pass never yields, so the wake-ups come after
      // it, not during it: the rest must hold them off too, not only a wake-up seen mid-pass.
      const pause = Math.min(200, performance.now() - started);
      this.#restUntil = performance.now() + pause;
      if (this.#checkAgain) {
        this.#checkAgain = false;
        if (this.#waiters.size > 0) this.#passIn(pause);
      }
    }
  }

  /** One pass after `ms`, however many wake-ups ask for it meanwhile. */
  #passIn(ms: number): void {
    this.#nextPass ??= setTimeout(() => {
      this.#nextPass = undefined;
      void this.#checkWaiters();
    }, ms);
  }

  /**
   * Resolve the waiters of one invocation once final. A record that cannot be read now (a
   * damaged row, a backend away) holds up only its own waiters: they keep waiting.
   */
  #settleWaiters(id: string, read: PromiseSettledResult<InvocationRecord | null>): void {
    const set = this.#waiters.get(id);
    if (!set) return;
    if (read.status === "rejected") {
      const reason: unknown = read.reason;
      this.logger.warn(
        `nenc: reading invocation ${id} for its result failed, will retry: ${reason instanceof Error ? reason.message : String(reason)}`,
      );
      return;
    }
    const record = read.value;
    if (!record || !isFinal(record.status)) return;
    this.#waiters.delete(id);
    for (const done of set) done(record);
  }

  /** Stop this process's workers and close the backend. */
  async close(): Promise<void> {
    for (const worker of [...this.#workers]) await worker.stop();
    this.#unwatch();
    if (this.#backend && !this.#givenBackend) await (await this.#backend).close();
    this.#backend = undefined;
  }
}

/** Someone awaiting an invocation's final record. */
type Waiter = (record: InvocationRecord) => void;

/** Waited invocations asked after per `finalAmong` call of the result watcher. */
const WAITER_CHUNK = 1000;

function isBackend(value: unknown): value is Backend {
  return typeof value === "object" && value !== null && "orchestrator" in value && "broker" in value;
}

export { APP_KEYS };
