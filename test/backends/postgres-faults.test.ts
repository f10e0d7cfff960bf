import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { NencError } from "../../src/core/errors.js";
import { Nenc } from "../../src/runtime/app.js";
import { eventually, sparePort } from "../conformance/harness.js";

/**
 * Faults of the real server and of real runners: a PostgreSQL instance of our own on a spare port
 * (so it can be stopped and restarted), worker processes that are restarted under, SIGKILLed or
 * SIGSTOPped.
 */

const SRC = fileURLToPath(new URL("../../src/index.ts", import.meta.url));
const TSX = fileURLToPath(new URL("../../node_modules/tsx/dist/esm/index.mjs", import.meta.url));

/** A throwaway PostgreSQL cluster in a temp dir, run as the postgres user when we are root. */
class TempPostgres {
  readonly dir = mkdtempSync(join(tmpdir(), "nenc-pg-"));
  readonly data = join(this.dir, "data");
  port = 0;
  readonly #bin: string;
  readonly #asUser: string[];

  constructor() {
    const versions = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort() : [];
    const version = versions[versions.length - 1];
    if (!version) throw new Error("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)");
    this.#bin = `/usr/lib/postgresql/${version}/bin`;
    // initdb refuses to run as root.
    this.#asUser = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
    if (this.#asUser.length) spawnSync("chown", ["postgres", this.dir]);
    chmodSync(this.dir, 0o700);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async init(): Promise<void> {
    this.port = await sparePort();
    this.#run("initdb", ["-D", this.data, "-U", "postgres", "-A", "trust", "--no-sync"]);
    writeFileSync(join(this.dir, "postgresql.auto.conf"), "");
    this.start();
  }

  start(): void {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c fsync=off`;
    this.#run("pg_ctl", ["-D", this.data, "-o", options, "-l", join(this.dir, "server.log"), "-w", "-t", "60", "start"]);
  }

  stop(): void {
    this.#run("pg_ctl", ["-D", this.data, "-m", "fast", "-w", "-t", "60", "stop"]);
  }

  cleanup(): void {
    if (existsSync(join(this.data, "postmaster.pid"))) {
      spawnSync(
        this.#asUser[0] ?? `${this.#bin}/pg_ctl`,
        [...this.#asUser.slice(1), `${this.#bin}/pg_ctl`, "-D", this.data, "-m", "immediate", "stop"].slice(this.#asUser.length ? 0 : 1),
      );
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  #run(tool: string, args: string[]): void {
    const command = [...this.#asUser, `${this.#bin}/${tool}`, ...args];
    const result = spawnSync(command[0]!, command.slice(1), { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${tool} failed: ${result.stderr || result.stdout}\n${this.#log()}`);
  }

  #log(): string {
    try {
      return readFileSync(join(this.dir, "server.log"), "utf8").slice(-2000);
    } catch {
      return "";
    }
  }
}

/** The task module every process of a test app loads: each run of `work` is recorded in a file. */
function writeTaskModule(dir: string): string {
  const path = join(dir, "tasks.mts");
  writeFileSync(
    path,
    `import { appendFileSync } from "node:fs";
import { Nenc } from ${JSON.stringify(SRC)};
export function defineTasks(app: Nenc, runsFile: string) {
  return {
    work: app.task("work", async (n: number, ms: number) => {
      const ctx = app.current()!;
      appendFileSync(runsFile, ctx.invocationId + " " + ctx.attempt + " " + process.pid + "\\n");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        ctx.signal.addEventListener("abort", () => (clearTimeout(timer), resolve(undefined)));
      });
      return n;
    }),
  };
}
if (process.env.NENC_TEST_ROLE === "worker") {
  const app = new Nenc({ configFile: null });
  defineTasks(app, process.env.NENC_TEST_RUNS!);
  const worker = await app.startWorker({ concurrency: Number(process.env.NENC_TEST_CONCURRENCY ?? 8) });
  process.stdout.write("runner " + worker.runnerId + "\\n");
  process.on("SIGTERM", () => void worker.stop().then(() => app.close()).then(() => process.exit(0)));
}
`,
  );
  return path;
}

interface Setup {
  readonly env: Record<string, string>;
  readonly runsFile: string;
  readonly module: string;
}

function setupApp(pg: TempPostgres, extra: Record<string, string> = {}): Setup {
  const runsFile = join(pg.dir, `runs-${randomUUID()}.txt`);
  writeFileSync(runsFile, "");
  return {
    runsFile,
    module: join(pg.dir, "tasks.mts"),
    env: {
      NENC_BACKEND: "postgres",
      NENC_POSTGRES_URL: pg.url,
      NENC_APP_ID: `faults-${randomUUID()}`,
      NENC_LOG_TO_CONSOLE: "false",
      ...extra,
    },
  };
}

async function openClient(setup: Setup) {
  const app = new Nenc({ env: setup.env, configFile: null });
  const { defineTasks } = (await import(setup.module)) as {
    defineTasks: (app: Nenc, runs: string) => { work: import("../../src/runtime/task.js").Task<[number, number], number> };
  };
  return { app, tasks: defineTasks(app, setup.runsFile) };
}

interface WorkerChild {
  readonly child: ChildProcess;
  readonly runnerId: Promise<string>;
  readonly exited: Promise<void>;
}

/** A worker process; `isolated` puts it in a PID namespace of its own: to the others it is on another host. */
function startWorker(setup: Setup, options: { isolated?: boolean; concurrency?: number } = {}): WorkerChild {
  const node = [process.execPath, "--import", TSX, setup.module];
  const command = options.isolated ? ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", ...node] : node;
  const child = spawn(command[0]!, command.slice(1), {
    env: {
      ...process.env,
      ...setup.env,
      NENC_TEST_ROLE: "worker",
      NENC_TEST_RUNS: setup.runsFile,
      NENC_TEST_CONCURRENCY: String(options.concurrency ?? 8),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const runnerId = new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /runner (\S+)\n/.exec(out);
      if (match) resolve(match[1]!);
    });
    void exited.then(() => reject(new Error(`worker exited before it started: ${stderr}`)));
  });
  return { child, runnerId, exited };
}

function runsOf(setup: Setup): Map<string, string[]> {
  const runs = new Map<string, string[]>();
  for (const line of readFileSync(setup.runsFile, "utf8").split("\n").filter(Boolean)) {
    const [id, attempt] = line.split(" ");
    runs.set(id!, [...(runs.get(id!) ?? []), attempt!]);
  }
  return runs;
}

async function kill(worker: WorkerChild, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill(signal);
  await worker.exited;
}

describe("postgres: server and runner faults", () => {
  let pg: TempPostgres;
  before(async () => {
    pg = new TempPostgres();
    await pg.init();
    writeTaskModule(pg.dir);
  });
  after(() => pg?.cleanup());

  it("migrates once when several processes start together on an empty server", async () => {
    const script = join(pg.dir, "first-use.mts");
    writeFileSync(
      script,
      `import { createPostgresBackend } from ${JSON.stringify(fileURLToPath(new URL("../../src/backends/postgres/postgres-backend.ts", import.meta.url)))};
const backend = await createPostgresBackend({ url: process.env.URL!, appId: "first-use-" + process.pid });
await backend.state.counts();
await backend.close();
`,
    );
    const children = Array.from({ length: 4 }, () =>
      spawn(process.execPath, ["--import", TSX, script], { env: { ...process.env, URL: pg.url }, stdio: ["ignore", "ignore", "pipe"] }),
    );
    const outcomes = await Promise.all(
      children.map(
        (child) =>
          new Promise<{ code: number | null; stderr: string }>((resolve) => {
            let stderr = "";
            child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
            child.once("exit", (code) => resolve({ code, stderr }));
          }),
      ),
    );
    assert.deepEqual(
      outcomes.map((o) => o.code),
      [0, 0, 0, 0],
      outcomes.map((o) => o.stderr).join("\n"),
    );
    const { PostgresConnection } = await import("../../src/backends/postgres/postgres-connection.js");
    const { MIGRATIONS } = await import("../../src/backends/postgres/postgres-migrations.js");
    const connection = await PostgresConnection.open({ url: pg.url, appId: "inspect" });
    try {
      const rows = await connection.query<{ version: number; n: number }>(
        "SELECT version, count(*) AS n FROM nenc.migrations GROUP BY version ORDER BY version",
      );
      assert.deepEqual(
        rows,
        MIGRATIONS.map((m) => ({ version: m.version, n: 1 })),
      );
    } finally {
      await connection.close();
    }
  });

  it("hands each invocation to one of four worker processes claiming at once: every one runs once", async () => {
    const setup = setupApp(pg);
    const { app, tasks } = await openClient(setup);
    const workers = Array.from({ length: 4 }, () => startWorker(setup, { concurrency: 20 }));
    try {
      await Promise.all(workers.map((w) => w.runnerId));
      const invs = await tasks.work.parallelize(Array.from({ length: 600 }, (_, i) => [i, 2] as [number, number]));
      const results = await Promise.all(invs.map((inv) => inv.result({ timeoutMs: 60_000 })));
      assert.deepEqual(
        results,
        invs.map((_, i) => i),
      );
      const runs = readFileSync(setup.runsFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => line.split(" "));
      assert.equal(runs.length, invs.length, "no invocation ran twice");
      assert.equal(new Set(runs.map(([id]) => id)).size, invs.length);
      // Each body ran under the attempt that is final (a claimed-ahead invocation given back and
      // claimed again has a later attempt, but still one run).
      const finalAttempt = new Map(await Promise.all(invs.map(async (inv) => [inv.id, String((await inv.record()).attempt)] as const)));
      assert.ok(
        runs.every(([id, attempt]) => finalAttempt.get(id!) === attempt),
        "every run was its invocation's final attempt",
      );
      assert.ok(new Set(runs.map(([, , pid]) => pid)).size > 1, "the work was shared between processes");
    } finally {
      await Promise.all(workers.map((w) => kill(w, "SIGTERM")));
      await app.close();
    }
  });

  it("restarting the server loses nothing and runs nothing twice; while it is down the error is clear", async () => {
    const setup = setupApp(pg);
    const { app, tasks } = await openClient(setup);
    const worker = startWorker(setup, { concurrency: 10 });
    try {
      await worker.runnerId;
      const before = await tasks.work.parallelize(Array.from({ length: 300 }, (_, i) => [i, 50] as [number, number]));
      await eventually(async () => runsOf(setup).size >= 20, "the worker to be busy");

      pg.stop();
      assert.ok(runsOf(setup).size < before.length, "the server went down while tasks were running");
      try {
        const unreachable = new RegExp(`^PostgreSQL at postgres://postgres@127\\.0\\.0\\.1:${pg.port}/postgres is unreachable: `);
        for (let i = 0; i < 2; i++) {
          await assert.rejects(tasks.work.invoke(-1, 0), (error: unknown) => {
            assert.ok(error instanceof NencError, `a NencError, not ${String(error)}`);
            assert.match(error.message, unreachable);
            return true;
          });
        }
      } finally {
        pg.start();
      }

      const afterRestart = await tasks.work.parallelize(Array.from({ length: 40 }, (_, i) => [1000 + i, 10] as [number, number]));
      const all = [...before, ...afterRestart];
      const results = await Promise.all(all.map((inv) => inv.result({ timeoutMs: 60_000 })));
      assert.deepEqual(results, [...before.map((_, i) => i), ...afterRestart.map((_, i) => 1000 + i)]);

      const runs = runsOf(setup);
      assert.equal(runs.size, all.length, "every invocation ran");
      for (const inv of all) {
        const record = await inv.record();
        // Once, under its final attempt (claimed-ahead work given back across the outage is
        // claimed again at a later attempt without having run).
        assert.deepEqual(
          runs.get(inv.id),
          [String(record.attempt)],
          `${inv.id} ran once, at its final attempt (${record.status}, attempt ${record.attempt})`,
        );
      }
      assert.equal(worker.child.exitCode, null, "the worker is still up");
    } finally {
      await kill(worker, "SIGTERM");
      await app.close();
    }
  });

  it("re-runs the work of a runner SIGKILLed on another host when its connection closes, long before its heartbeat times out", async () => {
    const setup = setupApp(pg, { NENC_RUNNER_DEAD_AFTER_MS: "600000" });
    const { app, tasks } = await openClient(setup);
    const doomed = startWorker(setup, { isolated: true, concurrency: 4 });
    try {
      const doomedId = await doomed.runnerId;
      const invs = await tasks.work.parallelize([
        [1, 60_000],
        [2, 60_000],
        [3, 60_000],
      ]);
      await eventually(
        async () => (await Promise.all(invs.map((i) => i.record()))).every((r) => r.status === "RUNNING" && r.owner === doomedId),
        "the isolated worker to run all three",
      );
      const backend = await app.backend();
      await eventually(
        async () => (await backend.orchestrator.connectedRunners?.())?.has(doomedId),
        "its heartbeat connection to hold its lock",
      );

      const reports: string[][] = [];
      await app.startWorker({ concurrency: 4, heartbeat: "inline", onRecovery: (report) => reports.push(report.deadRunners) });
      await kill(doomed);
      // Its heartbeat would only time out after 10 minutes: recovery found it by its closed connection.
      const rerun = invs.map((inv) => eventually(async () => (runsOf(setup).get(inv.id)?.length ?? 0) >= 2, "the re-run", 60_000));
      await Promise.all(rerun);
      assert.ok(
        reports.some((dead) => dead.includes(doomedId)),
        "recovery declared the killed runner dead",
      );
      for (const inv of invs) {
        assert.deepEqual(runsOf(setup).get(inv.id), ["1", "2"]);
        const history = (await inv.history()).map((h) => h.status);
        assert.deepEqual(history.slice(0, 6), ["REGISTERED", "PENDING", "RUNNING", "RUNNING_RECOVERY", "REROUTED", "PENDING"]);
      }
    } finally {
      await kill(doomed);
      await app.close();
    }
  });

  it("keeps a SIGSTOPped runner's lock (its connection stays open), recovers it by heartbeat timeout and fences it when it resumes", async () => {
    const setup = setupApp(pg, { NENC_RUNNER_DEAD_AFTER_MS: "3000" });
    const { app, tasks } = await openClient(setup);
    const paused = startWorker(setup, { isolated: true, concurrency: 2 });
    // The worker is the child of `unshare`: signal it, not unshare.
    const signalWorker = (signal: string) => spawnSync("pkill", [`-${signal}`, "-P", String(paused.child.pid)]);
    try {
      const pausedId = await paused.runnerId;
      const backend = await app.backend();
      // Its lock is held before the task goes in: a worker starting cold may take longer to take
      // it than the task takes to run.
      await eventually(async () => (await backend.orchestrator.connectedRunners?.())?.has(pausedId), "its lock to be held");
      const [inv] = await tasks.work.parallelize([[7, 1500]]);
      // Its body started there (RUNNING alone is recorded by the claim, a moment before).
      await eventually(async () => (runsOf(setup).get(inv!.id)?.length ?? 0) >= 1, "it to run on the worker to be paused");
      signalWorker("STOP");
      await app.startWorker({ concurrency: 2, heartbeat: "inline" });
      assert.equal((await backend.orchestrator.connectedRunners?.())?.has(pausedId), true, "a stopped process keeps its connection");
      assert.equal(await inv!.result({ timeoutMs: 60_000 }), 7);
      const record = await inv!.record();
      assert.equal(record.attempt, 2, "re-run once its heartbeat timed out");
      const pausedRunner = (await backend.orchestrator.runners()).find((r) => r.id === pausedId);
      assert.notEqual(pausedRunner?.deadAt, null);

      signalWorker("CONT");
      await eventually(
        async () =>
          (await backend.orchestrator.runners()).some((r) => r.id !== pausedId && r.hostId === pausedRunner!.hostId && r.deadAt === null),
        "the resumed worker to carry on as a new runner",
      );
      await eventually(async () => (runsOf(setup).get(inv!.id)?.length ?? 0) >= 2, "both runs recorded");
      assert.deepEqual(runsOf(setup).get(inv!.id), ["1", "2"]);
      const after = await inv!.record();
      assert.equal(after.status, "SUCCESS");
      assert.equal(after.attempt, 2);
      assert.deepEqual(
        (await inv!.history()).filter((h) => h.runnerId === pausedId).map((h) => h.status),
        ["PENDING", "RUNNING"],
        "the resumed runner wrote nothing more",
      );
    } finally {
      signalWorker("CONT");
      await kill(paused);
      await app.close();
    }
  });
});
