import { asError } from "../core/errors.js";
import type { TransitionRequest } from "../core/transition.js";
import type { Backend } from "../ports/backend.js";
import type { LogLine } from "../ports/records.js";

/** Told once a transition's batch is written: whether it applied, or the error that failed the batch. It must not throw. */
export type Written = (error: Error | undefined, applied: boolean) => void;

interface Pending {
  readonly request: TransitionRequest;
  readonly written: Written;
}

/**
 * Batches of transitions written at once. One batch's round trip is most of what a busy worker
 * waits on (on PostgreSQL a batch of 100 final writes took about 4 ms, and with one at a time
 * they were in flight 95% of a drain), so a second batch starts while the first is in flight,
 * on another connection where the backend has several.
 */
const BATCHES_IN_FLIGHT = 2;

/**
 * Group commit for a runner: transitions and log lines made in the same tick are written in one
 * atomic batch, up to BATCHES_IN_FLIGHT batches at once. What has to stay in order does:
 * - log lines are stored in the order they were made, and a batch's transitions only after every
 *   line made before them (an invocation's last lines land before its final status, after which
 *   its attempt no longer accepts lines);
 * - a batch that touches an invocation another batch in flight touches waits for that batch, so
 *   the steps of one invocation apply in the order they were made.
 */
export class WriteBatcher {
  readonly #backend: Backend;
  #transitions: Pending[] = [];
  #logs: LogLine[] = [];
  #scheduled = false;
  /** Batches in flight, each with the invocations its transitions touch. */
  readonly #inFlight = new Map<Promise<void>, ReadonlySet<string>>();
  /** Settles when every log line handed to a batch so far is written (or failed). */
  #logsWritten: Promise<void> = Promise.resolve();
  /** Told of what failed without a caller to hear it: a batch of log lines, a completion callback. */
  readonly #onError: (what: string, error: unknown) => void;

  constructor(backend: Backend, onError: (what: string, error: unknown) => void) {
    this.#backend = backend;
    this.#onError = onError;
  }

  /** A callback rather than a promise: this is once per invocation on a worker's hottest path. */
  transition(request: TransitionRequest, written: Written): void {
    this.#transitions.push({ request, written });
    this.#schedule();
  }

  /** transition() as a promise, for the paths that are not hot (a retry). */
  write(request: TransitionRequest): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.transition(request, (error, applied) => (error === undefined ? resolve(applied) : reject(error))),
    );
  }

  log(line: LogLine): void {
    this.#logs.push(line);
    this.#schedule();
  }

  /** Resolves once everything handed in so far is written. */
  async drain(): Promise<void> {
    while (this.#scheduled || this.#inFlight.size > 0 || this.#transitions.length > 0 || this.#logs.length > 0) {
      if (this.#inFlight.size > 0) await Promise.race(this.#inFlight.keys());
      else if (this.#scheduled) await new Promise((resolve) => setImmediate(resolve));
      else this.#start();
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  /** Start a batch with everything waiting, unless the batches in flight say it must wait for them. */
  #start(): void {
    if (this.#transitions.length === 0 && this.#logs.length === 0) return;
    if (this.#inFlight.size >= BATCHES_IN_FLIGHT) return;
    const ids = new Set(this.#transitions.map((p) => p.request.id));
    for (const busy of this.#inFlight.values()) for (const id of busy) if (ids.has(id)) return;
    const transitions = this.#transitions;
    const logs = this.#logs;
    this.#transitions = [];
    this.#logs = [];
    if (logs.length > 0) this.#logsWritten = this.#logsWritten.then(() => this.#writeLogs(logs));
    const batch: Promise<void> = this.#logsWritten
      .then(() => this.#writeTransitions(transitions))
      .finally(() => {
        this.#inFlight.delete(batch);
        // What waited for a free place, or for this batch's invocations, can go now.
        this.#start();
      });
    this.#inFlight.set(batch, ids);
  }

  async #writeLogs(logs: LogLine[]): Promise<void> {
    try {
      await this.#backend.state.appendLogs(logs);
    } catch (error) {
      this.#onError("writing logs failed", error);
    }
  }

  async #writeTransitions(transitions: Pending[]): Promise<void> {
    if (transitions.length === 0) return;
    let applied: boolean[];
    try {
      applied = await this.#backend.orchestrator.transition(transitions.map((p) => p.request));
    } catch (thrown) {
      const error = asError(thrown);
      for (const p of transitions) this.#tell(p, error, false);
      return;
    }
    transitions.forEach((p, i) => this.#tell(p, undefined, applied[i] === true));
  }

  #tell(pending: Pending, error: Error | undefined, applied: boolean): void {
    try {
      pending.written(error, applied);
    } catch (callbackError) {
      // A caller's bug must not keep the rest of the batch from hearing of their writes.
      this.#onError(`the caller of a ${pending.request.to} write for ${pending.request.id} failed on its outcome`, callbackError);
    }
  }
}
