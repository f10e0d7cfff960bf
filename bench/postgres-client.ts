/**
 * `npm run bench:postgres-client [-- --batch 250 --batches 400]`: the PostgreSQL backend's own CPU
 * per invocation on its hottest paths, without a server: building a batch of final writes (the
 * orchestrator's transition()) and a batch of registrations as parallelize() sends them (register(),
 * batches of 1,000), each on a connection that answers at once, timed per invocation on its first
 * batch (the code not yet compiled, as at a process's start) and as the median of the rest.
 * Together with bench:drain (which has the server in it) it tells the client's share apart.
 */
import type { PostgresConnection } from "../src/backends/postgres/postgres-connection.js";
import { PostgresOrchestrator } from "../src/backends/postgres/postgres-orchestrator.js";
import type { PostgresSession } from "../src/backends/postgres/postgres-session.js";
import { newInvocationId } from "../src/core/ids.js";
import { planTransition } from "../src/core/transition.js";
import { fmt, median, option } from "./support.js";

const batch = Number(option("batch", "250"));
const batches = Number(option("batches", "400"));
const runner = "vm-12163-9f7a7f";

/** Microseconds per invocation, for batches of `size` that `run` times: of the first batch, and the median of the rest. */
async function timed(size: number, run: (round: number) => Promise<number>): Promise<{ first: number; rest: number }> {
  const perInvocation: number[] = [];
  for (let round = 0; round < batches; round++) perInvocation.push((await run(round)) / size);
  return { first: perInvocation[0]!, rest: median(perInvocation.slice(1)) };
}

// A connection that answers every transition batch at once, as applied.
const db = {
  appId: "bench-postgres-client",
  query: async () => [{ refused: [], moved: [], wake: true }],
  wake() {},
} as unknown as PostgresConnection;
const orchestrator = new PostgresOrchestrator(db, {} as PostgresSession, 5000);
const finalWrites = await timed(batch, async () => {
  const at = Date.now();
  const requests = Array.from({ length: batch }, (_, i) =>
    planTransition({ id: newInvocationId(), status: "RUNNING", attempt: 1, owner: runner }, "SUCCESS", {
      by: runner,
      at: at + (i >> 5),
      result: '{"$nenc":"undefined"}',
    }),
  );
  const started = performance.now();
  await orchestrator.transition(requests);
  return (performance.now() - started) * 1000;
});

/** Registrations as parallelize() makes them: one task, no parent, ready when made. */
const REGISTER_BATCH = 1000;
const registrations = await timed(REGISTER_BATCH, async () => {
  const at = Date.now();
  const invocations = Array.from({ length: REGISTER_BATCH }, (_, i) => ({
    id: newInvocationId(at),
    taskId: "noop",
    callId: `noop:[${i}]`,
    args: `[${i}]`,
    parentId: null,
    createdAt: at,
    readyAt: at,
  }));
  const started = performance.now();
  await orchestrator.register(invocations);
  return (performance.now() - started) * 1000;
});

console.log(`\nPostgreSQL backend, client CPU per invocation (µs), ${fmt(batches)} batches\n`);
console.log("| path | first batch | median of the rest |\n| --- | ---: | ---: |");
console.log(`| a batch of ${fmt(batch)} final writes (transition) | ${fmt(finalWrites.first, 2)} | ${fmt(finalWrites.rest, 2)} |`);
console.log(
  `| a batch of ${fmt(REGISTER_BATCH)} registrations (register) | ${fmt(registrations.first, 2)} | ${fmt(registrations.rest, 2)} |`,
);
