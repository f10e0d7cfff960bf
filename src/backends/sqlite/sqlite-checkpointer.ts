import { once } from "node:events";
import { isMainThread, Worker as Thread } from "node:worker_threads";
import type { SqliteDatabase } from "./sqlite-schema.js";

/**
 * A checkpoint is asked for after this many commits, at most once per INTERVAL_MS: under load
 * about ten a second; when idle (a lease renewed now and then) rarely, as each costs two fsyncs.
 */
const COMMITS_PER_CHECKPOINT = 32;
const INTERVAL_MS = 100;
/** Frames at which a committing connection checkpoints by itself: the default of SQLite. */
const INLINE_CHECKPOINT_FRAMES = 1000;
/**
 * With the background checkpointer running, a commit checkpoints inline only past this many
 * frames. It is the safety net that lets the WAL restart from its beginning under a load that
 * never pauses (the background pass never catches up with a writer that never stops) and what
 * remains when the thread cannot run.
 */
const SAFETY_CHECKPOINT_FRAMES = 8000;

/**
 * Checkpoints the WAL from a thread of its own. A checkpoint copies pages into the database
 * file and fsyncs it: done inline by whichever connection commits past 1000 frames (SQLite's
 * default), it stalls that process's event loop for milliseconds, many times a second under load.
 * Started on the first write, so a process that only reads never starts a thread.
 */
export class SqliteCheckpointer {
  readonly #db: SqliteDatabase;
  readonly #path: string | null;
  #thread: Thread | undefined;
  #started = false;
  #requestedAt = 0;
  #commits = 0;

  /** `path` null for a database without a file: nothing to checkpoint. */
  constructor(db: SqliteDatabase, path: string | null) {
    this.#db = db;
    this.#path = path;
  }

  /** A write committed: have the thread checkpoint soon (started on the first write). */
  touch(): void {
    if (this.#started) {
      if (!this.#thread || ++this.#commits < COMMITS_PER_CHECKPOINT) return;
      const now = Date.now();
      if (now - this.#requestedAt < INTERVAL_MS) return;
      this.#requestedAt = now;
      this.#commits = 0;
      this.#thread.postMessage("checkpoint");
      return;
    }
    this.#started = true;
    // A backend opened inside a thread (the heartbeat's) writes little: it checkpoints inline.
    if (this.#path === null || !isMainThread) return;
    try {
      const thread = new Thread(new URL("./sqlite-checkpoint-thread.mjs", import.meta.url), {
        workerData: { path: this.#path },
      });
      thread.unref();
      thread.on("error", () => this.#fallBack());
      thread.on("exit", () => this.#fallBack());
      this.#thread = thread;
      this.#db.pragma(`wal_autocheckpoint = ${SAFETY_CHECKPOINT_FRAMES}`);
    } catch {
      this.#fallBack();
    }
  }

  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (!thread) return;
    thread.removeAllListeners("exit");
    // Held by the thread until it has closed its connection, so a process can exit right after.
    thread.ref();
    const exited = once(thread, "exit").then(
      () => true,
      () => true,
    );
    thread.postMessage("close");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)));
    if (!(await Promise.race([exited, timedOut]))) await thread.terminate();
    clearTimeout(timer);
  }

  #fallBack(): void {
    this.#thread = undefined;
    if (this.#db.open) this.#db.pragma(`wal_autocheckpoint = ${INLINE_CHECKPOINT_FRAMES}`);
  }
}
