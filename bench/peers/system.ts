import type { WorkerChild } from "./worker-child.js";

/** The settings every system shares in one run. */
export interface RunSettings {
  readonly redisUrl: string;
  readonly postgresUrl: string;
  /** Jobs one worker process runs at once. */
  readonly concurrency: number;
  /** Names the queues, schemas and app ids of this run, so nothing collides with others on the servers. */
  readonly runId: string;
}

/**
 * One system under test, as the driver uses it. Each lives in its own module with its own worker
 * script, keeps its data in its own queue name, schema or app id, and removes it in close().
 */
export interface BenchSystem {
  readonly name: string;
  /** The settings it runs with, one line, for the report. */
  readonly settings: string;
  /** Connect and create what it needs; throws SystemUnavailable when it cannot run here. */
  open(): Promise<void>;
  /** Enqueue no-op jobs numbered from..from+count-1 with the system's bulk API, in one call. */
  enqueueNoops(from: number, count: number): Promise<void>;
  /** Enqueue one probe job with the single-job API; it reports its start under `key`. */
  enqueueProbe(key: string): Promise<void>;
  /** Enqueue, in one bulk call, one job per key that reports its start under its key, then runs for `ms`. */
  enqueueHolds(keys: string[], ms: number): Promise<void>;
  /** Jobs completed since open(), as the system itself has recorded them (polled by the driver). */
  completedJobs(): Promise<number>;
  /** A new worker process (concurrency from the settings). */
  startWorker(): WorkerChild;
  /** Remove every job, queue, key or schema it made. Safe to call after a failed open(). */
  close(): Promise<void>;
}

/** The system cannot run in this build or on this machine (e.g. a nenc backend not written yet). */
export class SystemUnavailable extends Error {
  override readonly name = "SystemUnavailable";
}
