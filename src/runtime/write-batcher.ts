import type { TransitionRequest } from "../core/transition.js";
import type { Backend } from "../ports/backend.js";
import type { LogLine } from "../ports/records.js";

interface Pending {
  readonly request: TransitionRequest;
  readonly resolve: (applied: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit for a runner: transitions and log lines made in the same tick are written in one
 * atomic batch. Logs go first so that an invocation's last lines are stored before its final
 * status (after which its attempt no longer accepts lines).
 */
export class WriteBatcher {
  readonly #backend: Backend;
  #transitions: Pending[] = [];
  #logs: LogLine[] = [];
  #scheduled = false;
  #flushing: Promise<void> = Promise.resolve();
  readonly #onError: (error: unknown) => void;

  constructor(backend: Backend, onError: (error: unknown) => void) {
    this.#backend = backend;
    this.#onError = onError;
  }

  transition(request: TransitionRequest): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#transitions.push({ request, resolve, reject });
      this.#schedule();
    });
  }

  log(line: LogLine): void {
    this.#logs.push(line);
    this.#schedule();
  }

  /** Resolves once everything handed in so far is written. */
  async drain(): Promise<void> {
    while (this.#scheduled || this.#transitions.length > 0 || this.#logs.length > 0) {
      await this.#flushing;
      if (this.#transitions.length > 0 || this.#logs.length > 0) await this.#flush();
    }
    await this.#flushing;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#flushing = this.#flushing.then(() => this.#flush());
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const transitions = this.#transitions;
    const logs = this.#logs;
    this.#transitions = [];
    this.#logs = [];
    if (logs.length > 0) {
      try {
        await this.#backend.state.appendLogs(logs);
      } catch (error) {
        this.#onError(error);
      }
    }
    if (transitions.length === 0) return;
    try {
      const applied = await this.#backend.orchestrator.transition(transitions.map((p) => p.request));
      transitions.forEach((p, i) => p.resolve(applied[i] === true));
    } catch (error) {
      for (const p of transitions) p.reject(error);
    }
  }
}
