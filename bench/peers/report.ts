/**
 * What a worker process tells the bench driver, one line on stdout each:
 *   bench ready              the worker is up and taking jobs
 *   bench first <ms>         the first no-op job of this process started
 *   bench noops <n>          n no-op jobs of this process have run (every NOOP_REPORT_EVERY)
 *   bench start <key> <ms>   a probe or hold job started (its key names it)
 * Times are epoch milliseconds with sub-millisecond precision, read inside the job, so every
 * system is timed the same way whatever it records itself.
 */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export function reportReady(): void {
  process.stdout.write("bench ready\n");
}

/**
 * How often a worker reports its count of no-ops run. The driver waits for these before it asks the
 * system how many it has recorded, so that its polling does not load the server being measured.
 */
export const NOOP_REPORT_EVERY = 100;

let noops = 0;

/** Called by every no-op job: the first one of the process says so, and every NOOP_REPORT_EVERY-th. */
export function noteNoop(): void {
  noops++;
  if (noops === 1) process.stdout.write(`bench first ${epochMs()}\n`);
  if (noops % NOOP_REPORT_EVERY === 0) process.stdout.write(`bench noops ${noops}\n`);
}

export function reportStart(key: string): void {
  process.stdout.write(`bench start ${key} ${epochMs()}\n`);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The jobs every system runs: no-ops for throughput, probes for latency, holds for the kill scenario. */
export type BenchJob = { kind: "noop"; n: number } | { kind: "probe"; key: string } | { kind: "hold"; key: string; ms: number };

export async function runBenchJob(job: BenchJob): Promise<void> {
  switch (job.kind) {
    case "noop":
      return noteNoop();
    case "probe":
      return reportStart(job.key);
    case "hold":
      reportStart(job.key);
      await sleep(job.ms);
  }
}

/** A setting from the driver, passed in the environment; missing means the driver is broken. */
export function setting(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`bench worker: ${name} is not set`);
  return value;
}
