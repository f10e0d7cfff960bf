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
  /** Called once when the backend refuses a beat: this runner was declared dead. */
  readonly onRefused: () => void;
  readonly onError: (error: unknown) => void;
}

/**
 * A runner's proof of life. Threaded by default for backends shared across processes: a task
 * that spins the event loop for a minute must not get its live runner declared dead.
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

  start(runnerId: string): void {
    this.#runnerId = runnerId;
    if (this.#options.threaded) this.#startThread();
    else this.#startInline();
  }

  /** Beat for another runner id from now on (after a runner was declared dead and re-registered). */
  switchTo(runnerId: string): void {
    this.#runnerId = runnerId;
    this.#thread?.postMessage({ runnerId });
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread) await thread.terminate();
  }

  #startInline(): void {
    const { backend, clock, config } = this.#options;
    this.#timer = setInterval(() => {
      if (this.#beating) return;
      this.#beating = true;
      backend.orchestrator
        .heartbeat(this.#runnerId, clock.now())
        .then((alive) => {
          if (!alive) this.#options.onRefused();
        }, this.#options.onError)
        .finally(() => (this.#beating = false));
    }, config.heartbeatIntervalMs);
    this.#timer.unref();
  }

  #startThread(): void {
    const thread = new Thread(new URL("./heartbeat-thread.mjs", import.meta.url), {
      workerData: { config: this.#options.config, runnerId: this.#runnerId },
    });
    thread.unref();
    thread.on("message", (message: { refused?: boolean; error?: string }) => {
      if (message.refused) this.#options.onRefused();
      if (message.error) this.#options.onError(new Error(message.error));
    });
    thread.on("error", (error) => this.#options.onError(error));
    this.#thread = thread;
  }
}
