import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { SerializationError, TaskFailedError } from "../../src/core/errors.js";
import type { HistoryView } from "../../src/ports/records.js";
import { defineTasks } from "../fixtures/tasks.js";
import { runNenc, WorkerPool, type WorkerProcess } from "../process/nenc-process.js";
import { eventually, newInvocation, openApp, sleep, type BackendFixture, type TestApp } from "./harness.js";

/**
 * Real processes and real signals: `nenc worker` children on the fixture's backend are SIGKILLed,
 * SIGSTOPped, SIGTERMed and made to crash at each step of an invocation's life. Each case runs
 * against a fresh app (fixture.env()). Only for backends shared across processes; on others each
 * case says so and does nothing.
 *
 * Timings: the SIGKILL and SIGTERM cases keep the default config; cases about the heartbeat
 * (SIGSTOP, CPU-bound) shorten runnerDeadAfterMs through the environment so they take seconds.
 * Timeouts are generous (a loaded 2-core machine); nothing asserts on speed.
 */
export function processCases(fixture: BackendFixture): void {
  const WAIT = 60_000;
  const TEST = { timeout: 180_000 };

  /** A fresh app on the fixture's backend, its typed task handles, and a pool of worker processes. */
  const withApp =
    (body: (t: Scenario) => Promise<void>, extraEnv: Record<string, string> = {}, needsProcesses = true) =>
    async (context: TestContext) => {
      // The workers' module and this client must name the same app (env beats the module's code).
      const env = { NENC_APP_ID: `proc_${randomUUID().slice(0, 8)}`, ...fixture.env(), ...extraEnv };
      const opened = await openApp(fixture, { env });
      const pool = new WorkerPool();
      try {
        if (needsProcesses && !opened.backend.capabilities.sharedAcrossProcesses) {
          context.skip(`${fixture.name} keeps its data in one process (capability sharedAcrossProcesses is false)`);
          return;
        }
        await body({ ...opened, env, tasks: defineTasks(opened.app), pool, dir: mkdtempSync(join(tmpdir(), "nenc-proc-")) });
      } finally {
        await pool.killAll();
        await opened.app.close();
      }
    };

  describe(`${fixture.name}: real worker processes`, () => {
    it(
      "SIGKILL mid-task (default config): another worker takes it back and runs a second attempt",
      TEST,
      withApp(async (t) => {
        const { busy: first, inv, spare: second } = await busyAndSpare(t);
        assert.equal((await first.kill()).signal, "SIGKILL");

        const result = await inv.result({ timeoutMs: WAIT });
        assert.deepEqual(result, { pid: second.pid, attempt: 2 });
        const history = await inv.history();
        assert.deepEqual(statuses(history), [
          "REGISTERED",
          "PENDING",
          "RUNNING",
          "RUNNING_RECOVERY",
          "REROUTED",
          "PENDING",
          "RUNNING",
          "SUCCESS",
        ]);
        assert.deepEqual(runnersOf(history, "RUNNING"), [first.runnerId, second.runnerId]);
        assert.deepEqual(
          history.filter((h) => h.status === "RUNNING").map((h) => h.attempt),
          [1, 2],
        );
        assert.deepEqual(
          history.filter((h) => h.status === "RUNNING").map((h) => h.pid),
          [first.pid, second.pid],
        );
        assert.equal((await second.stop()).code, 0);
      }),
    );

    describe("SIGKILL at each step of an invocation's life (NENC_CRASH_AT)", { concurrency: true }, () => {
      const cases = [
        // point, how many times the task body ran in the crashing worker: claimed (and RUNNING) but
        // the body not called; killed mid-body; the body finished but its outcome not written
        ["claimed", 0],
        ["running", 1],
        ["result", 1],
      ] as const;
      for (const [point, ranBeforeCrash] of cases) {
        it(
          `crash once ${point}: the result still arrives, exactly once`,
          TEST,
          withApp(async (t) => {
            const markers = join(t.dir, "markers");
            const crashing = t.pool.spawn({ ...t.env, NENC_CRASH_AT: point });
            const inv = await t.tasks.mark.invoke(markers, 0);
            const exit = await crashing.exited;
            assert.equal(exit.signal, "SIGKILL", `the worker should have killed itself ${point}:\n${crashing.output}`);
            const before = readLines(markers);
            assert.equal(before.length, ranBeforeCrash, `task runs before the crash ${point}`);

            const rescuer = await t.pool.start(t.env);
            const attempt = await inv.result({ timeoutMs: WAIT });
            const record = await inv.record();
            assert.equal(record.status, "SUCCESS");
            assert.equal(record.attempt, attempt);
            const history = await inv.history();
            assert.equal(history.filter((h) => h.status === "SUCCESS").length, 1, `one SUCCESS in ${statuses(history).join(", ")}`);
            assert.deepEqual(runnersOf(history, "SUCCESS"), [rescuer.runnerId]);
            // Every run of the body is its own attempt, and the stored result is the last one's.
            const runs = readLines(markers);
            assert.equal(runs.length, ranBeforeCrash + 1);
            assert.equal(new Set(runs.map((line) => line.split(":")[1])).size, runs.length, `distinct attempts: ${runs.join(", ")}`);
            assert.equal(runs.at(-1)?.split(":")[1], String(attempt));
            // A worker claims to start: every crash point lies after RUNNING was recorded.
            assert.ok(statuses(history).includes("RUNNING_RECOVERY"), `RUNNING_RECOVERY in ${statuses(history).join(", ")}`);
            assert.equal((await rescuer.stop()).code, 0);
          }),
        );
      }
    });

    it(
      "claims under contention: 3 worker processes, 300 invocations, each attempt runs exactly once",
      TEST,
      withApp(async (t) => {
        const markers = join(t.dir, "markers");
        const workers = await Promise.all([1, 2, 3].map(() => t.pool.start(t.env, { args: ["--concurrency", "4"] })));
        const invocations = await t.tasks.mark.parallelize(Array.from({ length: 300 }, () => [markers, 15] as [string, number]));
        const attempts = await Promise.all(invocations.map((inv) => inv.result({ timeoutMs: 120_000 })));

        const runs = readLines(markers);
        const duplicates = runs.filter((line, i) => runs.indexOf(line) !== i);
        assert.deepEqual(duplicates, [], "an attempt ran twice");
        assert.equal(runs.length, 300, "each invocation ran once (no worker was taken for dead)");
        const ran = new Map(runs.map((line) => [line.split(":")[0], Number(line.split(":")[1])]));
        invocations.forEach((inv, i) => assert.equal(ran.get(inv.id), attempts[i], `invocation ${inv.id} ran its final attempt`));
        const runners = new Set(runs.map((line) => line.split(":")[2]));
        assert.ok(runners.size >= 2, `the claims were contended: runs by ${[...runners].join(", ")}`);
        for (const runner of runners)
          assert.ok(
            workers.some((w) => w.runnerId === runner),
            `runner ${runner} is one of the three`,
          );
        const codes = await Promise.all(workers.map(async (w) => (await w.stop()).code));
        assert.deepEqual(codes, [0, 0, 0]);
      }),
    );

    it(
      "SIGSTOP then SIGCONT: the paused runner is fenced off; none of its results, statuses or log lines land",
      TEST,
      withApp(
        async (t) => {
          const paused = await t.pool.start(t.env);
          const inv = await t.tasks.ticker.invoke(40, 100);
          await runningOn(t, inv.id, paused);
          await eventually(async () => (await inv.logs()).length >= 3, "a few stored log lines from the first runner", WAIT);
          paused.signal("SIGSTOP");
          const stoppedAt = Date.now();

          const rescuer = await t.pool.start(t.env);
          const retaken = await eventually(
            async () => {
              const record = await inv.record();
              return record.status === "RUNNING" && record.owner === rescuer.runnerId && record;
            },
            "the rescuer to run it after the heartbeat timeout",
            WAIT,
          );
          assert.equal(retaken.attempt, 2);
          paused.signal("SIGCONT");

          assert.equal(await inv.result({ timeoutMs: WAIT }), `done by pid ${rescuer.pid}`);
          // The paused runner's task goes on after SIGCONT; wait until it has finished trying.
          await eventually(async () => paused.output.includes(`tick 39 pid=${paused.pid}`), "the paused runner's task to finish", WAIT);
          await eventually(async () => /declared dead|was taken from this runner/.test(paused.output), "the paused runner to notice", WAIT);
          await sleep(500);

          const logs = await inv.logs();
          const mine = logs.filter((line) => line.message.includes(`pid=${paused.pid}`));
          assert.ok(mine.length >= 3, "the lines from before the stop are kept");
          assert.deepEqual(
            mine.filter((line) => line.at >= stoppedAt).map((line) => line.message),
            [],
            "lines written after the stop",
          );
          assert.ok(mine.every((line) => line.attempt === 1));
          assert.ok(
            logs.filter((line) => !mine.includes(line)).every((line) => line.attempt === 2 && line.message.includes(`pid=${rescuer.pid}`)),
          );
          const history = await inv.history();
          const recoveredAt = history.find((h) => h.status === "RUNNING_RECOVERY")?.at;
          assert.ok(recoveredAt !== undefined, `recovered: ${statuses(history).join(", ")}`);
          const late = history.filter((h) => h.runnerId === paused.runnerId && h.at >= recoveredAt);
          assert.deepEqual(late, [], "history entries by the paused runner after its recovery");
          assert.deepEqual(runnersOf(history, "SUCCESS"), [rescuer.runnerId]);
          const record = await inv.record();
          assert.equal(record.attempt, 2);

          // It carries on under a new runner id and still stops cleanly.
          assert.ok(paused.running, "the fenced worker is still alive");
          assert.equal((await paused.stop()).code, 0);
          assert.equal((await rescuer.stop()).code, 0);
        },
        { NENC_RUNNER_DEAD_AFTER_MS: "3000", NENC_HEARTBEAT_INTERVAL_MS: "300" },
      ),
    );

    it(
      "a CPU-bound task that blocks the event loop past runnerDeadAfterMs is not taken for dead",
      TEST,
      withApp(
        async (t) => {
          const workers = await Promise.all([1, 2].map(() => t.pool.start(t.env)));
          const inv = await t.tasks.spin.invoke(5000);
          const { pid, spunMs } = await inv.result({ timeoutMs: WAIT });
          assert.ok(spunMs >= 5000 && spunMs > Number(t.env["NENC_RUNNER_DEAD_AFTER_MS"]), "the loop really was blocked that long");
          const history = await inv.history();
          assert.deepEqual(statuses(history), ["REGISTERED", "PENDING", "RUNNING", "SUCCESS"]);
          assert.equal((await inv.record()).attempt, 1);
          assert.ok(workers.some((w) => w.pid === pid));
          const runners = await t.backend.orchestrator.runners();
          const mine = runners.filter((r) => workers.some((w) => w.runnerId === r.id));
          assert.equal(mine.length, 2);
          assert.deepEqual(
            mine.filter((r) => r.deadAt !== null).map((r) => r.id),
            [],
            `runners declared dead: ${JSON.stringify(mine)}\n${workers.map((w) => `${w.runnerId} (pid ${w.pid}):\n${w.output}`).join("\n")}`,
          );
          for (const worker of workers) assert.equal((await worker.stop()).code, 0);
        },
        { NENC_RUNNER_DEAD_AFTER_MS: "2000", NENC_HEARTBEAT_INTERVAL_MS: "250" },
      ),
    );

    it(
      "SIGTERM mid-task stops gracefully: KILLED -> REROUTED, another worker finishes it, exit code 0",
      TEST,
      withApp(async (t) => {
        const { busy: stopping, inv, spare: other } = await busyAndSpare(t);
        const exit = await stopping.stop();
        assert.equal(exit.code, 0, stopping.output);
        assert.match(stopping.output, /stopping \(SIGTERM\): rerouting 1 running invocation/);

        assert.deepEqual(await inv.result({ timeoutMs: WAIT }), { pid: other.pid, attempt: 2 });
        const history = await inv.history();
        assert.deepEqual(statuses(history), ["REGISTERED", "PENDING", "RUNNING", "KILLED", "REROUTED", "PENDING", "RUNNING", "SUCCESS"]);
        assert.deepEqual(runnersOf(history, "KILLED"), [stopping.runnerId]);
        assert.deepEqual(runnersOf(history, "SUCCESS"), [other.runnerId]);
        const runner = (await t.backend.orchestrator.runners()).find((r) => r.id === stopping.runnerId);
        assert.ok(
          runner !== undefined && runner.stoppedAt !== null && runner.deadAt === null,
          `retired as stopped, not dead: ${JSON.stringify(runner)}`,
        );
        assert.equal((await other.stop()).code, 0);
      }),
    );

    it(
      "bad input in the queue (an unknown task, unreadable arguments) fails those and the worker keeps working",
      TEST,
      withApp(async (t) => {
        const worker = await t.pool.start(t.env);
        // A client whose app has a task the worker's module lacks.
        const unknown = await t.app.task("notInTheModule", (n: number) => n).invoke(1);
        const corrupt = newInvocation("double");
        await t.backend.orchestrator.register([{ ...corrupt, args: "{this is not json" }]);
        const fine = await t.tasks.double.invoke(21);

        await assert.rejects(unknown.result({ timeoutMs: WAIT }), (error: unknown) => {
          assert.ok(error instanceof TaskFailedError);
          assert.equal(error.failure.name, "UnknownTaskError");
          assert.match(error.message, /notInTheModule/);
          return true;
        });
        await assert.rejects(t.app.invocation(corrupt.id).result({ timeoutMs: WAIT }), (error: unknown) => {
          assert.ok(error instanceof TaskFailedError);
          assert.match(error.message, /cannot be read/);
          return true;
        });
        assert.equal(await fine.result({ timeoutMs: WAIT }), 42);
        assert.equal(await (await t.tasks.double.invoke(50)).result({ timeoutMs: WAIT }), 100);
        assert.ok(worker.running);
        assert.match(worker.output, /notInTheModule/);
        assert.equal((await worker.stop()).code, 0);
      }),
    );

    it(
      "unserializable arguments are refused at invoke, naming the argument, and nothing is stored",
      TEST,
      withApp(
        async (t) => {
          const invokeLoosely = t.tasks.echo.invoke.bind(t.tasks.echo) as (...args: unknown[]) => Promise<unknown>;
          await assert.rejects(
            invokeLoosely(() => 1),
            (error: unknown) => {
              assert.ok(error instanceof SerializationError);
              assert.match(error.message, /argument 0 of echo/);
              assert.match(error.message, /function/);
              return true;
            },
          );
          await assert.rejects(invokeLoosely({ ok: 1, callback: () => 1 }), /argument 0 of echo\.callback is a function/);
          assert.deepEqual(await t.backend.state.counts(), {});
        },
        {},
        false,
      ),
    );

    it(
      "a task module that throws on import: nenc worker exits 2 naming the file and the error",
      TEST,
      withApp(async (t) => {
        const result = await runNenc(["worker", "--app", "test/fixtures/tasks-throws.ts"], { env: t.env });
        assert.equal(result.code, 2);
        assert.match(result.stderr, /cannot load app module test\/fixtures\/tasks-throws\.ts/);
        assert.match(result.stderr, /the fixture module fails to load on purpose/);
        assert.equal(result.stderr.trim().split("\n").length, 1, `one line:\n${result.stderr}`);
        assert.equal(result.stdout, "");
      }),
    );
  });
}

interface Scenario extends TestApp {
  readonly env: Record<string, string>;
  readonly tasks: ReturnType<typeof defineTasks>;
  readonly pool: WorkerPool;
  readonly dir: string;
}

/** A worker running a long task (its first attempt slow, later ones quick), then an idle second worker. */
async function busyAndSpare(t: Scenario) {
  const busy = await t.pool.start(t.env);
  const inv = await t.tasks.slow.invoke(120_000, 100);
  await runningOn(t, inv.id, busy);
  const spare = await t.pool.start(t.env);
  return { busy, inv, spare };
}

async function runningOn(t: Scenario, id: string, worker: WorkerProcess): Promise<void> {
  await eventually(
    async () => {
      const record = await t.app.invocation(id).record();
      return record.status === "RUNNING" && record.owner === worker.runnerId;
    },
    `invocation ${id} to run on ${worker.runnerId}`,
    60_000,
  );
}

function statuses(history: HistoryView[]): string[] {
  return history.map((h) => h.status);
}

function runnersOf(history: HistoryView[], status: string): (string | null)[] {
  return history.filter((h) => h.status === status).map((h) => h.runnerId);
}

function readLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}
