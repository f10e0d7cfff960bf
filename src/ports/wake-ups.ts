/**
 * The listeners behind a backend's Broker.subscribe. A burst of changes wakes each listener
 * once: `wake()` only schedules, and the scheduled call reaches every listener then subscribed.
 */
export class WakeUps {
  readonly #listeners = new Set<() => void>();
  readonly #schedule: (call: () => void) => void;
  #scheduled = false;

  /** `schedule` decides how long a burst is: the current tick by default. */
  constructor(schedule: (call: () => void) => void = queueMicrotask) {
    this.#schedule = schedule;
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** Add a listener; the returned function removes it. */
  add(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  wake(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#schedule(() => {
      this.#scheduled = false;
      for (const listener of [...this.#listeners]) listener();
    });
  }

  clear(): void {
    this.#listeners.clear();
  }
}
