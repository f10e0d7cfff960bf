/**
 * `npm run bench:redis-instructions [-- --invocations N]`: what nenc's Lua scripts cost the Redis
 * server, as instructions per invocation, counted by valgrind's callgrind on a redis-server of
 * its own (a spare port, no persistence). Instruction counts do not move with the machine's load
 * the way CPU time does, so a change to a script can be measured to a percent in one run.
 *
 * Through the backend ports, in the worker's pattern: register N invocations (default 5,000) in
 * batches of 1,000, claim them to start 50 at a time, then finish them (RUNNING -> SUCCESS) 50 at
 * a time; each phase is one callgrind dump. Needs valgrind (callgrind_control) and redis-server.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { createRedisBackend } from "../src/backends/redis/redis-backend.js";
import type { ClaimedInvocation } from "../src/ports/records.js";
import { fmt, portBenchSetUp, sleep, succeeded } from "./support.js";

const argv = process.argv.slice(2);
const at = argv.indexOf("--invocations");
const count = at >= 0 ? Number(argv[at + 1]) : 5000;
if (!Number.isInteger(count) || count <= 0) throw new Error(`--invocations: expected a positive whole number, got ${argv[at + 1]}`);
const BATCH = 50;

for (const tool of ["valgrind", "callgrind_control", "redis-server"]) {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
  } catch {
    throw new Error(`bench:redis-instructions needs ${tool} on the PATH`);
  }
}

const port = await new Promise<number>((resolve) => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address() as { port: number };
    server.close(() => resolve(port));
  });
});
const dir = mkdtempSync(join(tmpdir(), "nenc-callgrind-"));
const server = spawn(
  "valgrind",
  [
    "--tool=callgrind",
    "--compress-strings=no",
    `--callgrind-out-file=${dir}/out.%p`,
    "redis-server",
    "--port",
    String(port),
    "--save",
    "",
    "--appendonly",
    "no",
  ],
  { stdio: "ignore" },
);
const url = `redis://127.0.0.1:${port}`;

/** Close the current callgrind part under this name; returns nothing, the file is read at the end. */
const dump = (name: string) => execFileSync("callgrind_control", [`--dump=${name}`, String(server.pid)], { stdio: "ignore" });

try {
  await waitForServer();
  const backend = createRedisBackend({ url, appId: "instructions" });
  const now = Date.now();
  const runnerId = "bench-runner";
  const invocations = await portBenchSetUp(backend, runnerId, count, now, (i) => `[${i}]`);
  dump("setup");
  for (let i = 0; i < count; i += 1000) await backend.orchestrator.register(invocations.slice(i, i + 1000));
  dump("register");
  const claimed: ClaimedInvocation[] = [];
  for (;;) {
    const batch = await backend.broker.claim(runnerId, BATCH, Date.now(), { start: true });
    if (batch.length === 0) break;
    claimed.push(...batch);
  }
  dump("claim");
  let finished = 0;
  for (let i = 0; i < claimed.length; i += BATCH) {
    finished += (await backend.orchestrator.transition(succeeded(claimed.slice(i, i + BATCH), runnerId, Date.now()))).filter(
      Boolean,
    ).length;
  }
  dump("finish");
  if (claimed.length !== count || finished !== count) throw new Error(`claimed ${claimed.length} and finished ${finished} of ${count}`);
  await backend.close();

  const perInvocation = (name: string) => {
    const file = readdirSync(dir)
      .map((f) => join(dir, f))
      .find((f) => readFileSync(f, "utf8").includes(`desc: Trigger: dump ${name}\n`));
    const total = file && /^summary: (\d+)$/m.exec(readFileSync(file, "utf8"))?.[1];
    if (!total) throw new Error(`no callgrind dump named ${name} in ${dir}`);
    return Number(total) / count;
  };
  console.log(`\nRedis server instructions per invocation (callgrind), ${fmt(count)} invocations, batches of ${BATCH}\n`);
  console.log("| step | instructions per invocation |\n| --- | ---: |");
  for (const [label, name] of [
    ["register (batches of 1,000)", "register"],
    ["claim to start", "claim"],
    ["finish (RUNNING -> SUCCESS)", "finish"],
  ]) {
    console.log(`| ${label} | ${fmt(perInvocation(name!))} |`);
  }
} finally {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await admin.call("SHUTDOWN", "NOSAVE").catch(() => undefined);
  admin.disconnect();
  await new Promise((resolve) => (server.exitCode !== null ? resolve(undefined) : server.once("exit", resolve)));
  rmSync(dir, { recursive: true, force: true });
}

async function waitForServer(): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server under valgrind did not answer on port ${port} within 30 s`);
      await sleep(200);
    } finally {
      probe.disconnect();
    }
  }
}
