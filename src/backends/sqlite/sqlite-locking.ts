import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { NencError } from "../../core/errors.js";
import type { SqliteDatabase } from "./sqlite-schema.js";

/** How long a statement waits for another process's lock before it fails. */
const LOCK_TIMEOUT_MS = 10_000;
/**
 * Waits between attempts. A write transaction holds the lock for a fraction of a millisecond, so
 * the first waits are that short: they block this thread (no timer is that fine), but for less
 * time than SQLite's own first sleep of 1 ms, and without spinning. Longer waits yield.
 */
const SHORT_WAITS_US = [20, 50, 100, 100, 200, 200, 300, 500, 500];
const LONG_WAITS_MS = [1, 1, 2, 2, 5, 10, 20, 50];
const pause = new Int32Array(new SharedArrayBuffer(4));
/** Longest a shared read transaction lives; it ends sooner, at the end of the event loop's turn. */
const READ_SCOPE_MS = 100;

type Busy = Error & { code: string };

/** A result now, or later when the call had to wait for a lock. */
export type Eventually<T> = T | Promise<T>;

function isBusy(error: unknown): error is Busy {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/**
 * Runs statements so that waiting for another process's lock never blocks the event loop.
 *
 * SQLite's own busy handler sleeps 1, 2, 5, 10... ms inside the call, with the event loop
 * stopped, while a write transaction here lasts a fraction of a millisecond: with two worker
 * processes on one file, most of their time went to those sleeps. The connection's busy timeout
 * is therefore 0 once it is open, and a call that finds the lock taken is retried from here:
 * after yielding to the event loop once, then after waits of tens to hundreds of microseconds,
 * then of milliseconds (yielding), up to LOCK_TIMEOUT_MS.
 */
export class SqliteLocking {
  readonly #db: SqliteDatabase;
  readonly #begin;
  readonly #commit;
  #readOpenedAt: number | null = null;

  constructor(db: SqliteDatabase) {
    this.#db = db;
    db.pragma("busy_timeout = 0");
    this.#begin = db.prepare("BEGIN");
    this.#commit = db.prepare("COMMIT");
  }

  /** Build `fn` as one IMMEDIATE transaction, retried while the write lock is taken. */
  writer<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => Eventually<R> {
    const transaction = this.#db.transaction(fn);
    return (...args: A) =>
      this.#retry(() => {
        this.endRead();
        return transaction.immediate(...args);
      });
  }

  /**
   * Run reads. Every read of one turn of the event loop shares one read transaction: starting
   * one costs a few system calls (locks on the WAL index), more than an indexed lookup, and a
   * handle checking a thousand results reads a thousand rows in one turn. The snapshot is at
   * most READ_SCOPE_MS old; a write of this connection ends it first, so it sees its own writes.
   */
  read<R>(fn: () => R): Eventually<R> {
    return this.#retry(() => {
      this.#openRead();
      return fn();
    });
  }

  /** End the shared read transaction, if one is open. */
  endRead(): void {
    if (this.#readOpenedAt === null) return;
    this.#readOpenedAt = null;
    if (this.#db.inTransaction) this.#commit.run();
  }

  #openRead(): void {
    if (this.#readOpenedAt !== null) {
      if (Date.now() - this.#readOpenedAt <= READ_SCOPE_MS) return;
      this.endRead();
    }
    if (this.#db.inTransaction) return;
    this.#begin.run();
    this.#readOpenedAt = Date.now();
    setImmediate(() => this.endRead());
  }

  /** Run `fn`, again while SQLite says the database is busy, without blocking for long. */
  #retry<R>(fn: () => R): Eventually<R> {
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error)) throw error;
      this.endRead();
      return this.#retryLater(fn);
    }
  }

  async #retryLater<R>(fn: () => R): Promise<R> {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    // Let this process's other work run once: the holder may be about done.
    await yieldToEventLoop();
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && attempt <= SHORT_WAITS_US.length) Atomics.wait(pause, 0, 0, SHORT_WAITS_US[attempt - 1]! / 1000);
      else if (attempt > SHORT_WAITS_US.length) {
        await sleep(LONG_WAITS_MS[Math.min(attempt - SHORT_WAITS_US.length - 1, LONG_WAITS_MS.length - 1)]!);
      }
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error)) throw error;
        this.endRead();
        if (Date.now() > deadline) {
          throw new NencError(`the SQLite database stayed locked by another process for ${LOCK_TIMEOUT_MS / 1000} s (${error.code})`, {
            cause: error,
          });
        }
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
