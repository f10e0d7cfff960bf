// The task module of `npm run chaos` (test/chaos/run.ts), which its workers load with `nenc worker
// --app`. The backend and app id come from NENC_* set by the driver; CHAOS_LOG names the file each
// run is recorded in.
import { appendFileSync } from "node:fs";
import { Nenc } from "../../src/index.js";

export const app = new Nenc({ appId: process.env["NENC_APP_ID"] ?? "chaos" });

const runLog = process.env["CHAOS_LOG"] ?? "chaos-runs.log";

/**
 * Sleeps 0-199 ms (set by n, so that a re-run takes as long) and answers 2n. Each run appends a
 * line when it starts: the invocation, the attempt, the runner and the process, so that the driver
 * can tell whether an attempt ever started on two runners. One short append per line (O_APPEND),
 * which processes writing at once do not interleave.
 */
export const double = app.task("double", async (n: number): Promise<number> => {
  const run = app.current()!;
  appendFileSync(runLog, `${run.invocationId} ${run.attempt} ${run.runnerId} ${process.pid}\n`);
  await new Promise((resolve) => setTimeout(resolve, (n * 7919) % 200));
  return 2 * n;
});
