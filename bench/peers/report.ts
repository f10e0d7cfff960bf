/**
 * What a worker process tells the bench driver, one line on stdout each:
 *   bench ready              the worker is up and taking jobs
 *   bench first <ms>         the first no-op job of this process started
 *   bench start <key> <ms>   a probe or hold job started (its key names it)
 * Times are epoch milliseconds with sub-millisecond precision, read inside the job, so every
 * system is timed the same way whatever it records itself.
 */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export function reportReady(): void {
  process.stdout.write("bench ready\n");
}

let firstSeen = false;

/** Called by every no-op job; only the first one of the process says so. */
export function noteNoop(): void {
  if (firstSeen) return;
  firstSeen = true;
  process.stdout.write(`bench first ${epochMs()}\n`);
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
