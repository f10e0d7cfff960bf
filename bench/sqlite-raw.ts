/**
 * The physical limit of the SQLite backend on this disk: claim + complete pairs per second
 * straight through the backend ports, with no runtime around them, in the worker's pattern.
 * Registers N invocations, then loops: claim 64 to start (PENDING and RUNNING in one step), one
 * batch RUNNING -> SUCCESS.
 *
 *   node --import tsx bench/sqlite-raw.ts [count]      (default 50,000; NENC_BENCH_DIR for the file)
 *
 * Prints one line of JSON.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteBackend } from "../src/backends/sqlite/sqlite-backend.js";
import { portBenchSetUp, succeeded } from "./support.js";

const count = Number(process.argv[2] ?? 50_000);
const batch = 64;
const dir = mkdtempSync(join(process.env["NENC_BENCH_DIR"] ?? tmpdir(), "nenc-sqlite-raw-"));
const backend = createSqliteBackend({ path: join(dir, "bench.sqlite"), appId: "bench" });
const runnerId = "bench-runner";

try {
  const now = Date.now();
  const invocations = await portBenchSetUp(backend, runnerId, count, now);
  let started = performance.now();
  for (let i = 0; i < count; i += 1000) await backend.orchestrator.register(invocations.slice(i, i + 1000));
  const registerSeconds = (performance.now() - started) / 1000;

  started = performance.now();
  const cpuBefore = process.cpuUsage();
  let done = 0;
  for (;;) {
    const claimed = await backend.broker.claim(runnerId, batch, Date.now(), { start: true });
    if (claimed.length === 0) break;
    const finished = await backend.orchestrator.transition(succeeded(claimed, runnerId, Date.now()));
    done += finished.filter(Boolean).length;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  if (done !== count) throw new Error(`finished ${done} of ${count}`);
  console.log(
    JSON.stringify({
      bench: "sqlite-raw",
      invocations: count,
      claimBatch: batch,
      registerPerSecond: Math.round(count / registerSeconds),
      claimCompletePairsPerSecond: Math.round(count / seconds),
      seconds: Number(seconds.toFixed(3)),
      cpuMicrosecondsPerPair: Number(((cpu.user + cpu.system) / count).toFixed(1)),
    }),
  );
} finally {
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
}
