import { randomBytes } from "node:crypto";
import { cpus, hostname } from "node:os";
import type { Clock } from "../core/clock.js";
import { errorRecord, serialize } from "../core/serializer.js";
import { isRetriable, retryDelayMs } from "../core/retry.js";
import { asError, UnknownTaskError } from "../core/errors.js";
import { afterTransition, planTransition, type Ownership, type TransitionOptions, type TransitionRequest } from "../core/transition.js";
import { OWNED_STATUSES, STARTED_STATUS, type Status } from "../core/status.js";
import type { Backend } from "../ports/backend.js";
import type { ClaimedInvocation, LogLevel } from "../ports/records.js";
import type { Nenc } from "./app.js";
import { AsyncExecutor } from "./async-executor.js";
import type { TaskContext } from "./context.js";
import type { Executor, Outcome } from "./executor.js";
import { Heartbeat } from "./heartbeat.js";
import { hostId, processStartTime } from "./host.js";
import { Recovery, type RecoveryReport } from "./recovery.js";
import { WriteBatcher, type Written } from "./write-batcher.js";

export interface WorkerOptions {
  /** Tasks run at once (default: config `concurrency`, else 50 async or one per core). */
  readonly concurrency?: number;
  readonly runner?: "async" | "process";
  /** Beat from a thread (default where other processes share the backend) or from the event loop. */
  readonly heartbeat?: "thread" | "inline";
  /** Take part in recovery (default true). */
  readonly recovery?: boolean;
  /** Run tasks somewhere else than the built-in executors. */
  readonly executor?: Executor;
  /** Told of each recovery pass that found something. */
  readonly onRecovery?: (report: RecoveryReport) => void;
  /** Absolute path of the module that defines the app, for runners whose tasks run in other processes. */
  readonly appModule?: string;
}

/** Where a step takes an invocation, and what it records besides its status. */
interface Step extends Pick<TransitionOptions, "readyAt" | "result" | "error" | "retries"> {
  readonly to: Status;
}

interface Active {
  /** The state its last queued transition leaves it in. */
  state: Ownership;
  /** The task has returned; only its final write is pending. */
  finishing: boolean;
  readonly claimed: ClaimedInvocation;
  readonly abort: LazyAbort;
}

/**
 * A worker: one runner identity that claims invocations, runs them on its executor and records
 * the outcome, plus its heartbeat and its share of recovery.
 *
 * Loop ("pump", at most once per tick): whenever something may have changed (a broker
 * notification, a finished task, the poll timer), claim in one atomic step as many as there are
 * free slots, "to start": each is recorded PENDING and RUNNING by the claim itself, so RUNNING is
 * durable before any body runs. While its tasks are short (bodies that return within
 * SHORT_BODY_MS on average), it also claims batches ahead, each as many as it has slots: as many
 * as run within about SHORT_BODY_MS (up to the backend's claimAhead.batches, in claims of up to its
 * claimAhead.claimSize), so an invocation claimed ahead waits about one short body for a slot. The
 * next claim's round trip then overlaps the bodies running now, instead of alternating with them,
 * and claims and final writes come in fewer, larger statements (each a commit on a database, and
 * its WAL flush). With longer tasks nothing is claimed ahead of free slots: an invocation waiting
 * behind a long task is one an idle worker could run. When the body returns, its slot is free at
 * once (the next invocation claimed ahead starts in it) and RUNNING -> SUCCESS / RETRY / FAILED
 * goes to the write batcher (one atomic batch per tick). Every write is a compare-and-set on the
 * attempt it claimed: once recovery took the invocation (this runner looked dead), the write is
 * refused and the work is dropped. A refused heartbeat means the same for all of it: the worker
 * drops everything and carries on under a new runner id.
 *
 * Stop (SIGTERM/SIGINT via the CLI): no more claims; every active invocation goes KILLED ->
 * REROUTED in one batch, so another runner picks it up at once; then the runner is retired.
 */
export class Worker {
  readonly #app: Nenc;
  readonly #options: WorkerOptions;
  #backend!: Backend;
  #executor!: Executor;
  #batcher!: WriteBatcher;
  #heartbeat: Heartbeat | undefined;
  #recovery: Recovery | undefined;
  #runnerId = "";
  readonly #active = new Map<string, Active>();
  #stopping = false;
  #started = false;
  #pumpScheduled = false;
  /** Claims (or a reconcile) in flight, and how many invocations those claims ask for. */
  #claimsInFlight = 0;
  #claiming = 0;
  /** Those claims (or the reconcile), settled: a stop waits for them, so none lands after it. */
  readonly #steps = new Set<Promise<void>>();
  /** Tasks executing now; `#active` also holds those whose last write is still in flight. */
  #runningCount = 0;
  /** Claimed ahead (RUNNING, owned), in claim order, waiting for a slot; also in `#active`. */
  #waiting: Active[] = [];
  /** Moving average of how long a body takes (ms); undefined until one has returned. */
  #bodyMs: number | undefined;
  #mustReconcile = false;
  #unsubscribe: (() => void) | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  readonly #stopListeners: (() => void)[] = [];
  #stopped: Promise<void> | undefined;

  constructor(app: Nenc, options: WorkerOptions = {}) {
    this.#app = app;
    this.#options = options;
  }

  get runnerId(): string {
    return this.#runnerId;
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /** Tasks it runs at once (known once started). */
  get concurrency(): number {
    return this.#executor?.capacity ?? 0;
  }

  get kind(): string {
    return this.#executor?.kind ?? this.#options.runner ?? this.#app.config.runner;
  }

  onStop(listener: () => void): void {
    this.#stopListeners.push(listener);
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error("this worker was already started");
    this.#started = true;
    const app = this.#app;
    const config = app.config;
    this.#backend = await app.backend();
    this.#executor = this.#options.executor ?? (await this.#createExecutor());
    await this.#executor.start();
    this.#batcher = new WriteBatcher(this.#backend, (what, error) => this.#warn(what, error));
    await this.#register();
    const threaded = (this.#options.heartbeat ?? (this.#backend.capabilities.sharedAcrossProcesses ? "thread" : "inline")) === "thread";
    this.#heartbeat = new Heartbeat({
      backend: this.#backend,
      config,
      clock: app.clock,
      threaded,
      // A refusal of an id this worker already left behind (a beat sent before it moved on) is old news.
      onRefused: (runnerId) => {
        if (runnerId === this.#runnerId) void this.#onDeclaredDead();
      },
      onError: (error) => this.#warn("heartbeat failed", error),
    });
    await this.#heartbeat.start(this.#runnerId);
    if (this.#options.recovery !== false) {
      this.#recovery = new Recovery({
        backend: this.#backend,
        config,
        clock: app.clock,
        holder: () => this.#runnerId,
        onError: (error) => this.#warn("recovery pass failed", error),
        onReport: (report) => {
          this.#options.onRecovery?.(report);
          if (report.recovered.length) {
            app.logger.info(
              `nenc: recovered ${report.recovered.length} invocation(s) from dead runner(s) ${report.deadRunners.join(", ") || "(earlier)"}`,
            );
          }
        },
      });
      this.#recovery.start();
    }
    await this.#backend.prepareForWork?.();
    this.#unsubscribe = this.#backend.broker.subscribe(() => this.#pump());
    this.#pollTimer = setInterval(() => this.#pump(), config.pollIntervalMs);
    this.#pump();
  }

  /** Graceful stop: running invocations are rerouted to other runners; resolves once written. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe?.();
    clearInterval(this.#pollTimer);
    if (!this.#backend) return;
    // A claim in flight gives back what it gets (it sees the stop); wait for it before retiring.
    await Promise.all(this.#steps);
    const active = [...this.#active.values()];
    this.#active.clear();
    this.#waiting = [];
    const now = this.#app.clock.now();
    // A finishing invocation's last write is queued: let the batcher land it instead.
    const requests = active
      .filter((a) => !a.finishing)
      .flatMap((a) => {
        a.abort.abort();
        return this.#planChain(a.state, ["KILLED", "REROUTED"], now);
      });
    try {
      await this.#batcher.drain();
      if (requests.length) await this.#backend.orchestrator.transition(requests);
      await this.#recovery?.stop();
      await this.#backend.orchestrator.retireRunners([this.#runnerId], "stopped", now);
    } catch (error) {
      this.#warn("stopping cleanly failed; recovery will reroute what is left", error);
    }
    await this.#heartbeat?.stop();
    await this.#executor.stop();
    for (const listener of this.#stopListeners) listener();
  }

  async #createExecutor(): Promise<Executor> {
    const kind = this.#options.runner ?? this.#app.config.runner;
    const configured = this.#options.concurrency ?? this.#app.config.concurrency;
    if (kind === "process") {
      const { ProcessExecutor } = await import("./process-executor.js");
      return new ProcessExecutor(this.#app, configured || cpus().length, { appModule: this.#options.appModule });
    }
    return new AsyncExecutor(this.#app, configured || 50);
  }

  async #register(): Promise<void> {
    this.#runnerId = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    await this.#backend.orchestrator.registerRunner(
      {
        id: this.#runnerId,
        kind: this.#executor.kind,
        hostId,
        hostname: hostname(),
        pid: process.pid,
        pidStart: processStartTime(process.pid),
        startedAt: this.#app.clock.now(),
      },
      this.#app.clock.now(),
    );
  }

  /** Recovery declared this runner dead (it was paused or cut off): drop everything, start afresh. */
  async #onDeclaredDead(): Promise<void> {
    if (this.#stopping) return;
    const dropped = [...this.#active.keys()];
    for (const active of this.#active.values()) active.abort.abort();
    this.#active.clear();
    this.#waiting = [];
    const old = this.#runnerId;
    await this.#register();
    this.#heartbeat?.switchTo(this.#runnerId);
    this.#app.logger.warn(
      `nenc: runner ${old} was declared dead while silent; dropped ${dropped.length} invocation(s) ` +
        `that other runners now own, continuing as ${this.#runnerId}`,
    );
    this.#pump();
  }

  /** Claim at most once per tick, after every completion of this tick has freed its slot. */
  #pump(): void {
    if (this.#pumpScheduled || this.#stopping) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#claimMore();
    });
  }

  /** True while bodies are short enough that claiming ahead pays (see SHORT_BODY_MS). */
  #claimingAhead(): boolean {
    return this.#bodyMs !== undefined && this.#bodyMs < SHORT_BODY_MS;
  }

  /** Batches (of `capacity` each) to hold ahead of the slots: as many as run within SHORT_BODY_MS. */
  #batchesAhead(): number {
    if (!this.#claimingAhead()) return 0;
    return Math.max(1, Math.min(this.#backend.capabilities.claimAhead.batches, Math.floor(SHORT_BODY_MS / this.#bodyMs!)));
  }

  /**
   * How many to claim now: the free slots (plus batches ahead while bodies are short), less what
   * claims in flight already ask for, while all it holds and asks for stays within mostHeld (the
   * invocations whose last write is still in flight cost only memory, but a backend that takes
   * claims and not writes must not make them pile up).
   */
  #wanted(): number {
    const capacity = this.#executor.capacity;
    const batchesAhead = this.#batchesAhead();
    let want = capacity * (1 + batchesAhead) - this.#runningCount - this.#waiting.length - this.#claiming;
    // Every slot is busy or spoken for: top up in halves of a batch, not one by one.
    if (this.#runningCount + this.#claiming >= capacity && want < capacity / 2) want = 0;
    return Math.min(want, mostHeld(capacity, batchesAhead) - this.#active.size - this.#claiming);
  }

  /**
   * Start a claim if slots want one: one in flight at a time, or two while claiming ahead. At
   * most one starts per call, and the next from the reply of the one before, before its bodies
   * run: so the two are staggered, and while the worker runs one batch the backend is already
   * serving the next claim. A reconcile runs alone, when no claim is in flight (it tells strays
   * by what is not active).
   */
  #claimMore(): void {
    if (this.#stopping || this.#claimsInFlight >= (this.#claimingAhead() ? 2 : 1)) return;
    let step: Promise<boolean>;
    if (this.#mustReconcile) {
      if (this.#claimsInFlight > 0) return;
      step = this.#reconcile()
        .then(() => true)
        .finally(() => this.#claimsInFlight--);
    } else {
      const want = Math.min(this.#wanted(), Math.max(this.#executor.capacity, this.#backend.capabilities.claimAhead.claimSize));
      if (want <= 0) return;
      step = this.#claim(want);
    }
    this.#claimsInFlight++;
    const settled = step
      .catch((error: unknown) => {
        // The claim may have been applied with its reply lost: find what we own and do not run.
        this.#mustReconcile = true;
        this.#warn("claiming failed; will try again", error);
        return false;
      })
      .then((again) => {
        this.#steps.delete(settled);
        if (again) this.#pump();
      });
    this.#steps.add(settled);
  }

  /** One claim to start; true when it got all it asked for (the queue may hold more). */
  async #claim(want: number): Promise<boolean> {
    this.#claiming += want;
    const runnerId = this.#runnerId;
    let claimed: ClaimedInvocation[];
    try {
      claimed = await this.#backend.broker.claim(runnerId, want, this.#app.clock.now(), { start: true });
    } finally {
      // Counted out here rather than by the caller, so that the next claim can start from this
      // reply, below.
      this.#claiming -= want;
      this.#claimsInFlight--;
    }
    if (this.#stopping) {
      // Claimed during stop: give them straight back.
      const now = this.#app.clock.now();
      await this.#backend.orchestrator.transition(
        claimed.flatMap((c) => this.#planChain(this.#startedState(c), ["KILLED", "REROUTED"], now)),
      );
      return false;
    }
    if (runnerId !== this.#runnerId) {
      // Claimed under the id this worker left when it was declared dead: recovery takes those
      // back, and running them would run attempts that are no longer this runner's.
      return false;
    }
    if (claimed.length) crashPoint("claimed");
    for (const invocation of claimed) this.#hold(invocation);
    if (claimed.length === want) this.#claimMore();
    this.#fillSlots();
    return claimed.length === want;
  }

  /**
   * Give back invocations this runner owns but is not running: what a claim whose reply was lost
   * (a dropped connection) left behind. Nothing else could ever take them, as their owner lives.
   */
  async #reconcile(): Promise<void> {
    const owned = await this.#backend.state.list({ owner: this.#runnerId, statuses: OWNED_STATUSES });
    const strays = owned.filter((record) => !this.#active.has(record.id));
    const now = this.#app.clock.now();
    const requests = strays.flatMap((record) =>
      this.#planChain(record, record.status === "PENDING" ? ["REROUTED"] : ["KILLED", "REROUTED"], now),
    );
    if (requests.length) await this.#backend.orchestrator.transition(requests);
    this.#mustReconcile = false;
  }

  /** What a claim to start left an invocation in. */
  #startedState(invocation: ClaimedInvocation): Ownership {
    return { id: invocation.id, status: STARTED_STATUS, attempt: invocation.attempt, owner: this.#runnerId };
  }

  /** A claimed invocation, held until a slot is free for it. */
  #hold(invocation: ClaimedInvocation): void {
    const active: Active = { state: this.#startedState(invocation), claimed: invocation, abort: new LazyAbort(), finishing: false };
    this.#active.set(invocation.id, active);
    this.#waiting.push(active);
  }

  /** Start held invocations, in claim order, in the free slots (none once stopping: a stop gives them back). */
  #fillSlots(): void {
    while (!this.#stopping && this.#runningCount < this.#executor.capacity) {
      const next = this.#waiting.shift();
      if (!next) return;
      this.#runningCount++;
      this.#execute(next);
    }
  }

  /**
   * The claim recorded RUNNING before the body starts, so a body never starts for an attempt this
   * runner does not hold. (RUNNING does not prove the body started: one claimed ahead and given back
   * by a stop, or a worker killed between its claim and its bodies, leaves RUNNING behind without a
   * run.) The slot is freed as soon as the body returns: the final write goes to the batcher.
   * From here to the final write the steps are callbacks, not awaits: this runs for every
   * invocation, and each async function or await would be promises more per invocation (a drain
   * of no-ops made twelve each, and every one also runs the task context's promise hooks).
   */
  #execute(active: Active): void {
    const startedAt = performance.now();
    try {
      this.#executor.run(active.claimed, this.#contextFor(active), (outcome) => {
        this.#bodyEnded(active, startedAt);
        this.#finish(active, outcome);
      });
    } catch (error) {
      // An executor that throws instead of telling `done` (none of nenc's own do).
      this.#bodyEnded(active, startedAt);
      return this.#couldNotFinish(active, error);
    }
    crashPoint("running");
  }

  /** Its body returned: the slot is free for the next one. */
  #bodyEnded(active: Active, startedAt: number): void {
    const took = performance.now() - startedAt;
    this.#bodyMs = this.#bodyMs === undefined ? took : this.#bodyMs + (took - this.#bodyMs) * BODY_MS_WEIGHT;
    this.#runningCount--;
    active.finishing = true;
    this.#fillSlots();
    this.#pump();
  }

  /** Record where the outcome takes it (unless it was taken from this runner meanwhile). */
  #finish(active: Active, outcome: Outcome): void {
    if (active.abort.aborted) return this.#finished(active);
    crashPoint("result");
    try {
      this.#advance(active, this.#finalStep(active, outcome), (error) =>
        error ? this.#couldNotFinish(active, error) : this.#finished(active),
      );
    } catch (error) {
      this.#couldNotFinish(active, error);
    }
  }

  #couldNotFinish(active: Active, error: unknown): void {
    this.#warn(`invocation ${active.claimed.id} could not be finished`, error);
    this.#finished(active);
  }

  /**
   * Its last write has landed (or it was dropped). That makes room for a claim only where writes
   * in flight, not free slots, were what held claims back.
   */
  #finished(active: Active): void {
    const wanted = this.#wanted();
    if (this.#active.get(active.claimed.id) === active) this.#active.delete(active.claimed.id);
    if (this.#wanted() > wanted) this.#pump();
  }

  /** Where an outcome takes its invocation: SUCCESS, RETRY after its backoff, or FAILED. */
  #finalStep(active: Active, outcome: Outcome): Step {
    const { claimed } = active;
    if (outcome.ok) return { to: "SUCCESS", result: outcome.result };
    const task = this.#app.getTask(claimed.taskId);
    const error = outcome.error;
    const stored = serialize(errorRecord(error), "error");
    if (task && !(error instanceof UnknownTaskError) && isRetriable(task.retryPolicy, error, claimed.retries)) {
      const delay = retryDelayMs(task.retryPolicy, claimed.retries);
      const readyAt = this.#app.clock.now() + delay;
      this.#app.logger.info(
        `nenc: ${claimed.taskId} ${claimed.id} failed (${errorRecord(error).message}); retry ${claimed.retries + 1} in ${delay} ms`,
      );
      return { to: "RETRY", error: stored, retries: claimed.retries + 1, readyAt };
    }
    if (error instanceof UnknownTaskError) {
      this.#app.logger.error(`nenc: ${error.message} (invocation ${claimed.id}); marked FAILED, the worker carries on`);
    }
    return { to: "FAILED", error: stored };
  }

  /**
   * One owned transition of an active invocation, chained on the state its previous request will
   * leave (so requests can be queued before earlier ones land); `then` runs once it is written,
   * refused (fenced off: the attempt was taken from this runner) or given up (with the error).
   */
  #advance(active: Active, step: Step, then: (error?: Error) => void): void {
    if (active.abort.aborted) return then();
    const request = planTransition(active.state, step.to, {
      by: this.#runnerId,
      at: this.#app.clock.now(),
      readyAt: step.readyAt,
      result: step.result,
      error: step.error,
      retries: step.retries,
    });
    active.state = afterTransition(request);
    this.#write(request, (error, applied) => {
      if (error === undefined && !applied && !active.abort.aborted) {
        active.abort.abort();
        this.#app.logger.warn(
          `nenc: ${active.claimed.taskId} ${active.claimed.id} attempt ${request.attempt} was taken from this runner; its ${step.to} was not recorded`,
        );
      }
      then(error);
    });
  }

  /**
   * Write through the batcher, retrying while the backend is unreachable (#writeAgain): `written`
   * hears of an error only when the worker stopped before the write could be made.
   */
  #write(request: TransitionRequest, written: Written): void {
    this.#batcher.transition(request, (error, applied) => {
      if (error === undefined) return written(undefined, applied);
      this.#writeAgain(request, error).then(
        (applied) => written(undefined, applied),
        (failure: Error) => written(failure, false),
      );
    });
  }

  /**
   * The retries of a write whose first try failed. A retry that finds its change already made (a
   * try applied but its reply was lost) counts as applied.
   */
  async #writeAgain(request: TransitionRequest, error: Error): Promise<boolean> {
    for (let delay = 50; ; delay = Math.min(delay * 2, 2000)) {
      if (this.#stopping) throw error;
      this.#warn(`writing ${request.to} for ${request.id} failed; retrying in ${delay} ms`, error);
      await new Promise((resolve) => setTimeout(resolve, delay));
      try {
        return (await this.#batcher.write(request)) || (await this.#alreadyApplied(request));
      } catch (failure) {
        error = asError(failure);
      }
    }
  }

  async #alreadyApplied(request: TransitionRequest): Promise<boolean> {
    const record = await this.#backend.state.get(request.id);
    // Same attempt and status, changed no earlier than this request: ours (anything else that
    // moved it bumped the attempt or is fenced).
    return record !== null && record.attempt === request.attempt && record.updatedAt >= request.at && record.status === request.to;
  }

  #planChain(from: Ownership, steps: Status[], at: number): TransitionRequest[] {
    const requests: TransitionRequest[] = [];
    let state = from;
    for (const to of steps) {
      const request = planTransition(state, to, { by: this.#runnerId, at });
      requests.push(request);
      state = afterTransition(request);
    }
    return requests;
  }

  #contextFor(active: Active): TaskContext {
    return new ActiveContext(active, this.#runnerId, this.#batcher, this.#app.clock);
  }

  #warn(what: string, error: unknown): void {
    this.#app.logger.warn(`nenc: ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * The TaskContext of an invocation this worker runs. A class rather than an object literal with a
 * getter and a closure: one is made per invocation, and the literal's functions are a measurable
 * share of a no-op task's cost.
 */
class ActiveContext implements TaskContext {
  readonly invocationId: string;
  readonly taskId: string;
  readonly attempt: number;
  readonly runnerId: string;
  readonly #active: Active;
  readonly #batcher: WriteBatcher;
  readonly #clock: Clock;

  constructor(active: Active, runnerId: string, batcher: WriteBatcher, clock: Clock) {
    this.invocationId = active.claimed.id;
    this.taskId = active.claimed.taskId;
    this.attempt = active.state.attempt;
    this.runnerId = runnerId;
    this.#active = active;
    this.#batcher = batcher;
    this.#clock = clock;
  }

  get signal(): AbortSignal {
    return this.#active.abort.signal;
  }

  log(level: LogLevel, message: string): void {
    if (this.#active.abort.aborted) return;
    const { invocationId, runnerId } = this;
    this.#batcher.log({ invocationId, attempt: this.#active.state.attempt, runnerId, at: this.#clock.now(), level, message });
  }
}

/**
 * An abort that makes its AbortController only when a task asks for the signal: most tasks never
 * do, and a controller per invocation is a measurable share of a no-op task's cost.
 */
class LazyAbort {
  #aborted = false;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort();
  }
}

/**
 * Chaos hook: NENC_CRASH_AT=claimed|running|result makes this process SIGKILL itself at that
 * point of an invocation's life (claimed and RUNNING but the body not called; the body called and
 * not finished; the body finished and its outcome not written), so tests can kill a worker at
 * each step for real.
 */
const CRASH_AT = process.env["NENC_CRASH_AT"];
/** Invocations whose outcome is still being written may number this many per slot, beyond those mostHeld allows for claiming ahead. */
const FINISHING_PER_SLOT = 4;

/**
 * The most invocations a worker holds at once (running, claimed ahead, or with their last write in
 * flight), given its slots and the batches it claims ahead: the claims ahead, as many again
 * finishing, and FINISHING_PER_SLOT per slot. A worker claiming ahead finishes about a claim-ahead's
 * worth while it claims the next: with room for the claims ahead alone (the bound until 0b3e4d3),
 * a batch of final writes in flight on PostgreSQL cut its claims from 500 to pieces of 50-200, each
 * a statement and a commit of its own (BENCHMARKS.md).
 */
export function mostHeld(slots: number, batchesAhead: number): number {
  return (2 * batchesAhead + FINISHING_PER_SLOT) * slots;
}

/**
 * Bodies shorter than this on average make a worker claim batches ahead: then a claim's round
 * trip (about a millisecond on a network server) is what limits it, and an invocation claimed
 * ahead waits no longer than about one such body for its slot.
 */
const SHORT_BODY_MS = 5;
/** Weight of the newest body in the moving average of body times. */
const BODY_MS_WEIGHT = 0.1;
function crashPoint(point: "claimed" | "running" | "result"): void {
  if (CRASH_AT === point) process.kill(process.pid, "SIGKILL");
}
