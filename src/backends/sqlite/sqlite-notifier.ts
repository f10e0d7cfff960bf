import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Listeners are called at once on a write seen on disk, and again this long after the last one.
 * The second call is needed: a commit becomes visible to readers a moment after its last write
 * to the WAL (the WAL index is updated next, in shared memory that inotify does not see), so the
 * first call may come too early to see it. In between, events only mark that a call is due, so a
 * busy database causes about one call per WAKE_DELAY_MS.
 */
const WAKE_DELAY_MS = 2;

/**
 * Wake-ups for one database file. Writes by this connection wake this process's listeners once
 * per tick. Writes by other processes (or other connections of this one) are seen through inotify
 * on the file's directory (a watch on the WAL file itself would lose track when SQLite deletes
 * and recreates it): any change to the database or its WAL wakes the listeners, coalesced.
 * Nothing polls: an idle process does no work at all.
 */
export class SqliteNotifier {
  readonly #dir: string | null;
  readonly #files: ReadonlySet<string>;
  readonly #listeners = new Set<() => void>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #due = false;
  #tickScheduled = false;
  #closed = false;

  /** `path` null for a database with no file (":memory:"): only this connection's writes wake. */
  constructor(path: string | null) {
    this.#dir = path === null ? null : dirname(path);
    const file = path === null ? "" : basename(path);
    this.#files = new Set([file, `${file}-wal`]);
  }

  subscribe(listener: () => void): () => void {
    if (this.#closed) return () => {};
    this.#listeners.add(listener);
    this.#startWatching();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopWatching();
    };
  }

  /** This connection committed a change. */
  changed(): void {
    if (this.#tickScheduled || this.#listeners.size === 0) return;
    this.#tickScheduled = true;
    queueMicrotask(() => {
      this.#tickScheduled = false;
      this.#wake();
    });
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#stopWatching();
  }

  #startWatching(): void {
    if (this.#watcher || this.#dir === null) return;
    try {
      const watcher = watch(this.#dir, { persistent: false }, (_event, filename) => this.#onFileEvent(filename));
      watcher.on("error", () => this.#stopWatching());
      watcher.unref();
      this.#watcher = watcher;
    } catch {
      // No inotify (limits reached, unusual file system): callers still poll at their interval.
    }
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onFileEvent(filename: string | Buffer | null): void {
    if (filename !== null && !this.#files.has(filename.toString())) return;
    this.#due = true;
    if (this.#timer) return;
    this.#wake();
    this.#schedule();
  }

  /** While events keep coming, one call per WAKE_DELAY_MS; then one last call, and quiet. */
  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#due) return;
      this.#due = false;
      this.#wake();
      this.#schedule();
    }, WAKE_DELAY_MS);
    this.#timer.unref();
  }

  #wake(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
