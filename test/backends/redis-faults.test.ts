// The Redis backend against a server of its own on a spare port that the tests kill and start
// again: clear errors while it is gone, clients and workers that reconnect by themselves, nothing
// lost across a restart with an append-only file, no attempt run twice, a runner found dead by
// its closed connection alone, and a claim whose reply was lost handed out again.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { RedisUnreachableError } from "../../src/backends/redis/redis-client.js";
import { createRedisBackend } from "../../src/backends/redis/redis-backend.js";
import { ManualClock } from "../../src/core/clock.js";
import { NencError } from "../../src/core/errors.js";
import { Recovery } from "../../src/runtime/recovery.js";
import { defineTasks } from "../fixtures/tasks.js";
import { WorkerPool } from "../process/nenc-process.js";
import { eventually, newInvocation, openApp, remoteRunner, sleep, sparePort, type BackendFixture } from "../conformance/harness.js";

const WAIT = 120_000;
const SETPRIV = "/usr/bin/setpriv";
const TEST = { timeout: 300_000 };

/** A redis-server child on a spare port, in a temp dir; kill() and start() again keep port and dir. */
class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), "nenc-redis-"));
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly port: number,
    readonly persistent: boolean,
  ) {}

  static async start(persistent: boolean): Promise<RedisServer> {
    const server = new RedisServer(await sparePort(), persistent);
    servers.push(server);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", ...persistence, "--dir", this.dir];
    // With setpriv the kernel kills the server when this process dies, however it dies.
    const child = existsSync(SETPRIV)
      ? spawn(SETPRIV, ["--pdeathsig", "KILL", "redis-server", ...args], { stdio: "ignore" })
      : spawn("redis-server", args, { stdio: "ignore" });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    await eventually(() => ping(this.port), `redis-server on port ${this.port} to answer`);
  }

  async kill(): Promise<void> {
    this.#child?.kill("SIGKILL");
    await this.#exited;
  }

  async remove(): Promise<void> {
    await this.kill();
    this.removeNow();
  }

  /** For an exiting process, which cannot wait on events: kill, wait until it has stopped writing, remove. */
  removeNow(): void {
    const pid = this.#child?.pid;
    this.#child?.kill("SIGKILL");
    if (pid !== undefined) waitUntilGoneSync(pid);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const servers: RedisServer[] = [];
after(async () => {
  for (const server of servers) await server.remove();
});
const pools: WorkerPool[] = [];
const newPool = () => {
  const pool = new WorkerPool();
  pools.push(pool);
  return pool;
};
// A test process stopped by a timeout or a signal never reaches after() or its finally blocks:
// its workers (killAll signals at once) and servers go with it.
const removeAllNow = () => {
  for (const pool of pools) void pool.killAll();
  for (const server of servers) server.removeNow();
};
process.once("exit", removeAllNow);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    removeAllNow();
    process.exit(1);
  });
}

/** Spin (at most 2 s) until a killed child is gone or a zombie: then it writes nothing more. */
function waitUntilGoneSync(pid: number): void {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    let state = "";
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    } catch {
      return;
    }
    if (state === "Z" || state === "X") return;
  }
}

/** True once the server answers PING (and has loaded its data). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: "127.0.0.1" }, () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });
}

function fixtureOn(url: string): BackendFixture {
  return {
    name: "redis",
    env: () => ({ NENC_BACKEND: "redis", NENC_REDIS_URL: url, NENC_APP_ID: `faults-${randomUUID().slice(0, 8)}` }),
  };
}

/** "<invocation>:<attempt>:<runner>" lines written by the `mark` task, grouped by invocation. */
function runsByInvocation(file: string): Map<string, number[]> {
  const runs = new Map<string, number[]>();
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  for (const line of lines) {
    const [id = "", attempt = ""] = line.split(":");
    runs.set(id, [...(runs.get(id) ?? []), Number(attempt)]);
  }
  return runs;
}

const unreachable = (port: number) => new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${port} is unreachable: connect ECONNREFUSED`);

describe("redis: server faults", () => {
  it("fails calls with a clear error while the server is gone, and the same client works once it is back", TEST, async () => {
    const server = await RedisServer.start(false);
    const { app } = await openApp(fixtureOn(server.url));
    const { double } = defineTasks(app);
    try {
      const before = await double.invoke(1);
      await server.kill();
      for (const call of [() => double.invoke(2), () => before.status()]) {
        const error: unknown = await call().then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(error instanceof NencError, `a NencError, not ${String(error)}`);
        assert.match(error.message, unreachable(server.port));
      }
      await server.start();
      const again = await eventually(() => double.invoke(3), "the client to reconnect by itself");
      assert.equal(await again.status(), "REGISTERED");
    } finally {
      await app.close();
    }
  });

  for (const outageMs of [300, 3000]) {
    it(
      `restart with an append-only file while tasks run, down ${outageMs} ms: nothing lost, no attempt run twice, workers carry on`,
      TEST,
      async () => {
        const server = await RedisServer.start(true);
        const { app, env } = await openApp(fixtureOn(server.url));
        const { mark } = defineTasks(app);
        const pool = newPool();
        const markers = join(server.dir, "markers");
        try {
          const workers = [await pool.start(env), await pool.start(env)];
          const first = await mark.parallelize(Array.from({ length: 3000 }, () => [markers, 20] as [string, number]));
          await eventually(async () => runsByInvocation(markers).size >= 300, "work to be under way");
          await server.kill();
          const doneAtKill = runsByInvocation(markers).size;
          await sleep(outageMs);
          await server.start();
          const second = await eventually(
            () => mark.parallelize(Array.from({ length: 500 }, () => [markers, 0] as [string, number])),
            "the client to enqueue again after the restart",
          );
          const all = [...first, ...second];
          const ids = new Set(all.map((inv) => inv.id));
          await eventually(
            async () => (await app.backend()).state.counts().then((c) => c.SUCCESS === ids.size),
            "every invocation to succeed",
            WAIT,
          );

          const runs = runsByInvocation(markers);
          const backend = await app.backend();
          let reruns = 0;
          for (const id of ids) {
            const attempts = runs.get(id) ?? [];
            assert.equal(new Set(attempts).size, attempts.length, `invocation ${id} ran an attempt twice: ${attempts.join(", ")}`);
            const history = (await backend.state.history(id)).map((h) => h.status);
            const takenBack = history.filter((s) => s === "RUNNING_RECOVERY" || s === "PENDING_RECOVERY" || s === "KILLED").length;
            assert.ok(
              attempts.length <= 1 + takenBack,
              `invocation ${id} ran ${attempts.length} times, taken back ${takenBack}: ${history.join(" > ")}`,
            );
            reruns += attempts.length - 1;
          }
          assert.equal([...runs.keys()].filter((id) => !ids.has(id)).length, 0);
          for (const worker of workers) {
            assert.ok(worker.running, `worker ${worker.pid} survived the restart:\n${worker.output}`);
            assert.doesNotMatch(worker.output, /node_modules\/ioredis/, "no driver internals in what the worker printed");
          }
          for (const worker of workers) assert.equal((await worker.stop()).code, 0, worker.output);
          console.log(`# down ${outageMs} ms with ${doneAtKill} of 3000 started; ${reruns} attempt(s) re-run after being taken back`);
        } finally {
          await pool.killAll();
          await app.close();
        }
      },
    );
  }

  it("restart without persistence: workers register again by themselves and run new work", TEST, async () => {
    const server = await RedisServer.start(false);
    const { app, env } = await openApp(fixtureOn(server.url));
    const { double } = defineTasks(app);
    const pool = newPool();
    try {
      const worker = await pool.start(env);
      assert.equal(await (await double.invoke(2)).result({ timeoutMs: WAIT }), 4);
      await server.kill();
      await server.start();
      const inv = await eventually(() => double.invoke(21), "the client to reconnect");
      assert.equal(await inv.result({ timeoutMs: WAIT }), 42);
      assert.ok(worker.running, worker.output);
      assert.equal((await worker.stop()).code, 0, worker.output);
    } finally {
      await pool.killAll();
      await app.close();
    }
  });
});

/**
 * A runner on "another host" (so no pid check applies) that claims one invocation, runs it and
 * heartbeats, then waits; printed lines tell the test where it is.
 */
const REMOTE_RUNNER = `
import { createRedisBackend } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "../../src/backends/redis/redis-backend.ts")).href)};
const [url, appId, runnerId] = process.argv.slice(2);
const backend = createRedisBackend({ url, appId });
const now = Date.now();
await backend.orchestrator.registerRunner({ id: runnerId, kind: "async", hostId: "another-host", hostname: "elsewhere", pid: 4242, pidStart: null, startedAt: now }, now);
const [claimed] = await backend.broker.claim(runnerId, 1, now);
const running = { id: claimed.id, expect: { status: "PENDING", attempt: claimed.attempt, owner: runnerId }, to: "RUNNING", owner: runnerId, attempt: claimed.attempt, readyAt: null, at: now, by: runnerId };
await backend.orchestrator.transition([running]);
await backend.orchestrator.heartbeat(runnerId, now);
console.log("running " + claimed.id);
setInterval(() => {}, 1000);
`;

describe("redis: runner connections", () => {
  it("finds a runner dead once its connection closes, with no heartbeat timeout, and not while it is only stopped", TEST, async () => {
    // The clock never moves: a heartbeat can never time out, only a closed connection tells.
    const clock = new ManualClock(Date.now());
    const { app, backend } = await openApp(fixtureOn("redis://127.0.0.1:6379"), { clock });
    const dir = mkdtempSync(join(tmpdir(), "nenc-remote-"));
    const script = join(dir, "remote-runner.mts");
    writeFileSync(script, REMOTE_RUNNER);
    const inv = newInvocation("t");
    await backend.orchestrator.register([inv]);
    const runnerId = "remote runner, with odd characters: ,%";
    const child = spawn(process.execPath, ["--import", "tsx", script, "redis://127.0.0.1:6379", app.appId, runnerId], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      await eventually(async () => output.includes(`running ${inv.id}`), "the remote runner to run the invocation");
      const recovery = new Recovery({
        backend,
        config: app.config,
        clock,
        holder: () => "recoverer",
        onError: (e) => {
          throw e;
        },
      });
      assert.ok((await backend.orchestrator.connectedRunners?.())?.has(runnerId), "connected while its process lives");

      child.kill("SIGSTOP");
      assert.deepEqual((await recovery.pass())?.deadRunners, [], "a stopped process keeps its connection: only its heartbeat can tell");
      assert.equal((await backend.state.get(inv.id))?.status, "RUNNING");

      child.kill("SIGKILL");
      await exited;
      await eventually(
        async () => !(await backend.orchestrator.connectedRunners?.())?.has(runnerId),
        "the server to see the connection close",
      );
      const report = await recovery.pass();
      assert.deepEqual(report?.deadRunners, [runnerId]);
      assert.deepEqual(report?.recovered, [inv.id]);
      assert.equal((await backend.state.get(inv.id))?.status, "REROUTED");
    } finally {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      await backend.state.purge();
      await app.close();
    }
  });
});

/**
 * A TCP proxy to a Redis server that can lose a reply: armed, it drops the next reply, cuts every
 * connection and refuses new ones until restored, so the call fails as unreachable after it ran.
 */
class LossyProxy {
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #loseNext = false;

  private constructor(
    readonly port: number,
    readonly target: number,
  ) {}

  static async start(target: number): Promise<LossyProxy> {
    const proxy = new LossyProxy(await sparePort(), target);
    await proxy.restore();
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  loseNextReply(): void {
    this.#loseNext = true;
  }

  /** Accept connections (again), on the same port. */
  async restore(): Promise<void> {
    const server = createServer((client) => this.#pipe(client));
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(this.port, "127.0.0.1", resolve));
    this.#server = server;
  }

  close(): void {
    this.#server?.close();
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
  }

  #pipe(client: Socket): void {
    const upstream = createConnection({ port: this.target, host: "127.0.0.1" });
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on("error", () => {});
      socket.once("close", () => {
        this.#sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (data: Buffer) => upstream.write(data));
    upstream.on("data", (data: Buffer) => {
      if (!this.#loseNext) return void client.write(data);
      this.#loseNext = false;
      this.close();
    });
  }
}

describe("redis: lost claim replies", () => {
  for (const lostStart of [true, false]) {
    it(
      `a ${lostStart ? "start" : "plain"} claim whose reply was lost is handed to the runner's next start claim, RUNNING`,
      TEST,
      async () => {
        const proxy = await LossyProxy.start(6379);
        const backend = createRedisBackend({ url: proxy.url, appId: `lost-${randomUUID().slice(0, 8)}` });
        try {
          const runner = remoteRunner();
          const at = Date.now();
          await backend.orchestrator.registerRunner(runner, at);
          // Claims nothing, but loads the script: the reply lost below is the claim's own.
          assert.deepEqual(await backend.broker.claim(runner.id, 1, at, { start: true }), []);
          const invs = [newInvocation("t", [1], at - 1), newInvocation("t", [2], at)];
          await backend.orchestrator.register(invs);
          proxy.loseNextReply();
          await assert.rejects(backend.broker.claim(runner.id, 1, at, { start: lostStart }), RedisUnreachableError);
          await proxy.restore();

          const later = at + 1;
          const claimed = await backend.broker.claim(runner.id, 1, later, { start: true });
          assert.deepEqual(
            claimed.map((c) => [c.id, c.attempt]),
            [[invs[0]!.id, 1]],
            "handed out again, and it counts towards max",
          );
          const record = await backend.state.get(invs[0]!.id);
          assert.equal(record?.status, "RUNNING");
          assert.equal(record?.owner, runner.id);
          assert.deepEqual(
            (await backend.state.history(invs[0]!.id)).map((h) => [h.status, h.attempt, h.runnerId, h.at]),
            [
              ["REGISTERED", 0, null, at - 1],
              ["PENDING", 1, runner.id, at],
              ["RUNNING", 1, runner.id, lostStart ? at : later],
            ],
          );
          const counts = await backend.state.counts();
          assert.deepEqual([counts.REGISTERED, counts.PENDING ?? 0, counts.RUNNING], [1, 0, 1]);
          assert.deepEqual(
            (await backend.state.list({ statuses: ["RUNNING"] })).map((r) => r.id),
            [invs[0]!.id],
            "indexed as RUNNING",
          );
          assert.deepEqual(
            (await backend.broker.claim(runner.id, 5, later, { start: true })).map((c) => c.id),
            [invs[1]!.id],
            "handed out once",
          );
        } finally {
          await backend.state.purge();
          await backend.close();
          proxy.close();
        }
      },
    );
  }
});
