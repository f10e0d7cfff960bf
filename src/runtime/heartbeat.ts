import { Worker as Thread } from "node:worker_threads";
import type { AppConfig } from "../core/config.js";
import type { Clock } from "../core/clock.js";
import type { Backend } from "../ports/backend.js";

export interface HeartbeatOptions {
  readonly backend: Backend;
  readonly config: AppConfig;
  readonly clock: Clock;
  /** Beat from a thread of its own, so a task that blocks the event loop cannot silence it. */
  readonly threaded: boolean;
  /**
   * Called when the backend refuses a beat: that runner was declared dead. It names the runner,
   * since a beat sent before a switchTo may be refused after it.
   */
  readonly onRefused: (runnerId: string) => void;
  readonly onError: (error: unknown) => void;
}

/**
 * A runner's proof of life. Threaded by default for backends shared across processes: a task
 * that spins the event loop for a minute must not get its live runner declared dead.
 *
 * The thread needs a moment to start (a loader, its own backend connection); until its first
 * beat the event loop beats instead, and `start` resolves only once the thread beats, so a
 * worker claims nothing a blocking task could silence its heartbeat with before then. If the
 * thread fails, the event loop keeps beating.
 */
export class Heartbeat {
  readonly #options: HeartbeatOptions;
  #runnerId = "";
  #timer: NodeJS.Timeout | undefined;
  #thread: Thread | undefined;
  #beating = false;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
  }

  /** Resolves once beats are flowing from where they will come from (the thread, when threaded). */
  start(runnerId: string): Promise<void> {
    this.#runnerId = runnerId;
    this.#startInline();
    return this.#options.threaded ? this.#startThread() : Promise.resolve();
  }

  /** Beat for another runner id from now on (after a runner was declared dead and re-registered). */
  switchTo(runnerId: string): void {
    this.#runnerId = runnerId;
    this.#thread?.postMessage({ runnerId });
  }

  async stop(): Promise<void> {
    this.#stopInline();
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread) await thread.terminate();
  }

  #stopInline(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #startInline(): void {
    const { backend, clock, config } = this.#options;
    this.#timer = setInterval(() => {
      if (this.#beating) return;
      this.#beating = true;
      const runnerId = this.#runnerId;
      backend.orchestrator
        .heartbeat(runnerId, clock.now())
        .then((alive) => {
          if (!alive) this.#options.onRefused(runnerId);
        }, this.#options.onError)
        .finally(() => (this.#beating = false));
    }, config.heartbeatIntervalMs);
    this.#timer.unref();
  }

  #startThread(): Promise<void> {
    const thread = new Thread(new URL("./heartbeat-thread.mjs", import.meta.url), {
      workerData: { config: this.#options.config, runnerId: this.#runnerId },
    });
    thread.unref();
    this.#thread = thread;
    return new Promise<void>((ready) => {
      thread.on("message", (message: { beating?: boolean; refused?: string; error?: string }) => {
        if (message.beating) {
          this.#stopInline();
          ready();
        }
        if (message.refused) this.#options.onRefused(message.refused);
        if (message.error) this.#options.onError(new Error(message.error));
      });
      thread.on("error", (error) => {
        this.#options.onError(error);
        ready();
      });
      thread.on("exit", () => ready());
    });
  }
}
