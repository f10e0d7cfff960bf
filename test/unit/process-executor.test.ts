import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ProcessCrashError, TaskFailedError } from "../../src/index.js";
import { deserialize, serialize } from "../../src/core/serializer.js";
import type { ClaimedInvocation, LogLevel } from "../../src/ports/records.js";
import type { TaskContext } from "../../src/runtime/context.js";
import type { Outcome } from "../../src/runtime/executor.js";
import { processAlive } from "../../src/runtime/host.js";
import { ProcessExecutor } from "../../src/runtime/process-executor.js";
import { add, app, fail, logLines, retryOnce, TransientError, whoAmI } from "../fixtures/process-tasks.js";

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const appModule = fixture("process-tasks.ts");
const tmp = mkdtempSync(join(tmpdir(), "nenc-process-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

let sequence = 0;
function claimed(taskId: string, args: unknown[]): ClaimedInvocation {
  return { id: `inv-${++sequence}`, taskId, args: serialize(args), attempt: 1, retries: 0, parentId: null };
}

interface TestContext extends TaskContext {
  readonly lines: { level: LogLevel; message: string }[];
  readonly abort: AbortController;
}
function contextFor(invocation: ClaimedInvocation, onLog?: (message: string) => void): TestContext {
  const abort = new AbortController();
  const lines: { level: LogLevel; message: string }[] = [];
  return {
    invocationId: invocation.id,
    taskId: invocation.taskId,
    attempt: invocation.attempt,
    runnerId: "test-runner",
    signal: abort.signal,
    abort,
    lines,
    log: (level, message) => {
      lines.push({ level, message });
      onLog?.(message);
    },
  };
}

async function run(executor: ProcessExecutor, taskId: string, ...args: unknown[]): Promise<Outcome> {
  const invocation = claimed(taskId, args);
  return outcomeOf(executor, invocation, contextFor(invocation));
}

/** What executor.run tells its callback, as a promise. */
function outcomeOf(executor: ProcessExecutor, invocation: ClaimedInvocation, context: TaskContext): Promise<Outcome> {
  return new Promise((resolve) => executor.run(invocation, context, resolve));
}

function resultOf(outcome: Outcome): unknown {
  assert.ok(outcome.ok, `expected a result, got ${outcome.ok ? "" : String(outcome.error)}`);
  return deserialize(outcome.result);
}

function errorOf(outcome: Outcome): Error {
  assert.ok(!outcome.ok, "expected an error");
  assert.ok(outcome.error instanceof Error, `expected an Error, got ${String(outcome.error)}`);
  return outcome.error;
}

/** process.kill(pid, 0): true while the pid exists (a zombie still does). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

describe("ProcessExecutor: a warm pool of child processes", () => {
  const executor = new ProcessExecutor(app, 2, { appModule });
  before(() => executor.start());
  after(() => executor.stop());

  it("starts `capacity` children of this process", async () => {
    assert.equal(executor.pids.length, 2);
    const [first, second] = await Promise.all([run(executor, "whoAmI"), run(executor, "whoAmI")]);
    const seen = [resultOf(first), resultOf(second)] as { pid: number; ppid: number }[];
    for (const who of seen) {
      assert.equal(who.ppid, process.pid);
      assert.notEqual(who.pid, process.pid);
      assert.ok(executor.pids.includes(who.pid));
    }
    assert.notEqual(seen[0]?.pid, seen[1]?.pid, "two tasks at once ran in two children");
  });

  it("returns serialized results", async () => {
    assert.equal(resultOf(await run(executor, "add", 2, 3)), 5);
    const value = { at: new Date("2024-01-02T03:04:05Z"), tags: new Set(["a"]), big: 10n ** 20n, none: undefined };
    assert.deepEqual(resultOf(await run(executor, "echo", value)), value);
  });

  it("returns errors with their name, message and fields, and the class when the task retries on it", async () => {
    const plain = errorOf(await run(executor, "fail", "bad input"));
    assert.equal(plain.name, "TypeError");
    assert.equal(plain.message, "bad input");
    assert.match(plain.stack ?? "", /process-tasks\.ts/, "the stack is the child's");
    const transient = errorOf(await run(executor, "failTransient", 4));
    assert.ok(transient instanceof TransientError, "restored as the class the task retries on");
    assert.equal(transient.code, 4);
    assert.equal(transient.message, "transient 4");
    const unknown = errorOf(await run(executor, "noSuchTask"));
    assert.equal(unknown.name, "UnknownTaskError");
  });

  it("sends the task's log lines to the parent's context, in order", async () => {
    const invocation = claimed("logLines", [3]);
    const context = contextFor(invocation);
    assert.equal(resultOf(await outcomeOf(executor, invocation, context)), 3);
    const pid = context.lines[0]?.message.match(/from pid (\d+)/)?.[1];
    assert.ok(pid && Number(pid) !== process.pid);
    assert.deepEqual(context.lines, [
      { level: "info", message: `line 0 from pid ${pid}` },
      { level: "info", message: `line 1 from pid ${pid}` },
      { level: "info", message: `line 2 from pid ${pid}` },
      { level: "warn", message: "last line" },
    ]);
  });

  it("a CPU-bound task does not block this process's event loop", async () => {
    // The task spins until a file exists, and only this process's timer writes the file: the task
    // can only finish if the timer kept firing while it ran.
    const release = join(tmp, "release-spin");
    const invocation = claimed("spinUntil", [release]);
    let ticks = 0;
    let spinning = false;
    const timer = setInterval(() => {
      if (spinning && ++ticks === 5) writeFileSync(release, "go");
    }, 10);
    try {
      const context = contextFor(invocation, (message) => (spinning ||= message === "spinning"));
      const outcome = await outcomeOf(executor, invocation, context);
      assert.equal(resultOf(outcome), "released");
      assert.ok(ticks >= 5);
    } finally {
      clearInterval(timer);
    }
  });

  it("a task that SIGKILLs its process gives ProcessCrashError; the child is replaced and the pool keeps working", async () => {
    const before = executor.pids;
    const crash = errorOf(await run(executor, "killSelf"));
    assert.ok(crash instanceof ProcessCrashError);
    const pid = Number(crash.message.match(/^child process (\d+) exited with SIGKILL while running killSelf$/)?.[1]);
    assert.ok(before.includes(pid), crash.message);
    assert.equal(pidExists(pid), false, "the dead child was reaped");
    const [first, second] = await Promise.all([run(executor, "add", 1, 1), run(executor, "add", 2, 2)]);
    assert.equal(resultOf(first), 2);
    assert.equal(resultOf(second), 4);
    assert.equal(executor.pids.length, 2);
    assert.ok(!executor.pids.includes(pid));
  });

  it("a task that calls process.exit gives ProcessCrashError with the exit code", async () => {
    const crash = errorOf(await run(executor, "exitSelf", 7));
    assert.ok(crash instanceof ProcessCrashError);
    assert.match(crash.message, /^child process \d+ exited with code 7 while running exitSelf$/);
    assert.equal(resultOf(await run(executor, "add", 20, 22)), 42);
  });

  it("aborting a task SIGKILLs its child and replaces it", async () => {
    const invocation = claimed("hang", []);
    let started!: () => void;
    const hanging = new Promise<void>((resolve) => (started = resolve));
    const context = contextFor(invocation, (message) => message === "hanging" && started());
    const outcome = outcomeOf(executor, invocation, context);
    await hanging;
    const before = executor.pids;
    context.abort.abort();
    const crash = errorOf(await outcome);
    assert.ok(crash instanceof ProcessCrashError);
    assert.match(crash.message, /exited with SIGKILL while running hang: it was killed because hang inv-\d+ was aborted/);
    const pid = Number(crash.message.match(/^child process (\d+)/)?.[1]);
    assert.ok(before.includes(pid));
    assert.equal(pidExists(pid), false);
    assert.equal(resultOf(await run(executor, "add", 3, 4)), 7);
  });

  it("a task aborted before it reached a child does not run", async () => {
    const invocation = claimed("exitSelf", [9]);
    const context = contextFor(invocation);
    const before = executor.pids;
    const outcome = outcomeOf(executor, invocation, context);
    context.abort.abort();
    assert.match(errorOf(await outcome).message, /exitSelf inv-\d+ was aborted before it started/);
    assert.deepEqual(executor.pids, before, "no child was lost");
  });
});

describe("ProcessExecutor: start and stop", () => {
  it("stop() kills every child, busy or idle, and waits until each has exited", async () => {
    const executor = new ProcessExecutor(app, 3, { appModule });
    await executor.start();
    const invocation = claimed("hang", []);
    const busy = outcomeOf(executor, invocation, contextFor(invocation));
    const pids = executor.pids;
    assert.equal(pids.length, 3);
    assert.ok(pids.every(pidExists));
    await executor.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: "ESRCH" }, `child ${pid} is gone`);
    assert.deepEqual(executor.pids, []);
    assert.ok(errorOf(await busy) instanceof ProcessCrashError);
    assert.match(errorOf(await run(executor, "add", 1, 2)).message, /stopped/);
  });

  it("refuses to start without the app module, naming what to pass", async () => {
    const executor = new ProcessExecutor(app, 1);
    await assert.rejects(executor.start(), /runner "process" needs the path of the module that defines the app.*appModule/);
    await assert.rejects(app.startWorker({ runner: "process", concurrency: 1 }), /appModule/);
  });

  it("fails to start with the module's own error when the module throws on import, leaving no child", async () => {
    const executor = new ProcessExecutor(app, 2, { appModule: fixture("process-broken.ts") });
    await assert.rejects(
      executor.start(),
      /cannot load app module .*process-broken\.ts: importing it threw Error: this module is broken on purpose/,
    );
    assert.deepEqual(executor.pids, []);
  });

  it("fails to start when the module exports no app", async () => {
    const executor = new ProcessExecutor(app, 1, { appModule: fixture("process-no-app.ts") });
    await assert.rejects(executor.start(), /app module .*process-no-app\.ts exports no Nenc app/);
    assert.deepEqual(executor.pids, []);
  });

  it("children exit when their parent is SIGKILLed, even one whose task holds its event loop", async () => {
    const parent = spawn(process.execPath, ["--import", "tsx", fixture("process-parent.ts")], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((resolve) => parent.once("exit", resolve));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: parent.stdout }).once("line", resolve);
      parent.once("exit", (code) => reject(new Error(`the parent fixture exited with ${code} before printing its children`)));
    });
    const { pids } = JSON.parse(line) as { pids: number[] };
    assert.equal(pids.length, 2);
    assert.ok(pids.every((pid) => processAlive(pid, null)));
    parent.kill("SIGKILL");
    await exited;
    // Orphans are reparented, and nobody here can reap them: a zombie counts as gone.
    for (let waited = 0; pids.some((pid) => processAlive(pid, null)) && waited < 15_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(
      pids.filter((pid) => processAlive(pid, null)),
      [],
      "no child outlived its parent",
    );
  });
});

describe("ProcessExecutor: end to end through a worker", () => {
  it('app.startWorker({ runner: "process" }) runs invocations in children and stores results, errors and logs', async () => {
    const worker = await app.startWorker({ runner: "process", appModule, concurrency: 2 });
    try {
      assert.equal(worker.kind, "process");
      const options = { timeoutMs: 60_000 };
      const [sum, who] = await Promise.all([
        add.invoke(2, 3).then((inv) => inv.result(options)),
        whoAmI.invoke().then((inv) => inv.result(options)),
      ]);
      assert.equal(sum, 5);
      assert.equal(who.ppid, process.pid);

      const failed = await fail.invoke("bad input");
      await assert.rejects(failed.result(options), (error: unknown) => {
        assert.ok(error instanceof TaskFailedError);
        assert.equal(error.failure.name, "TypeError");
        assert.equal(error.failure.message, "bad input");
        return true;
      });

      // RetryError thrown in a child is still RetryError to the runner: retried, then succeeds.
      const retried = await retryOnce.invoke(join(tmp, "retry-marker"));
      assert.equal(await retried.result(options), "second try");
      const statuses = (await retried.history()).map((entry) => entry.status);
      assert.ok(statuses.includes("RETRY"), statuses.join(" "));

      const logged = await logLines.invoke(2);
      assert.equal(await logged.result(options), 2);
      const lines = await logged.logs();
      assert.deepEqual(
        lines.map((line) => [line.level, line.message.replace(/pid \d+/, "pid N"), line.runnerId]),
        [
          ["info", "line 0 from pid N", worker.runnerId],
          ["info", "line 1 from pid N", worker.runnerId],
          ["warn", "last line", worker.runnerId],
        ],
      );

      const runners = await (await app.backend()).orchestrator.runners();
      assert.deepEqual(
        runners.map((runner) => [runner.id, runner.kind, runner.pid]),
        [[worker.runnerId, "process", process.pid]],
        "only the parent is a runner",
      );
      await worker.stop();
      assert.equal(pidExists(who.pid), false, "the worker's children are gone after stop");
    } finally {
      await app.close();
    }
  });

  it("works the same with NENC_BACKEND=sqlite, in a process of its own", async () => {
    const sqlitePath = join(tmp, "e2e.sqlite");
    const child = spawn(process.execPath, ["--import", "tsx", fixture("process-e2e.ts")], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, NENC_BACKEND: "sqlite", NENC_SQLITE_PATH: sqlitePath, NENC_LOG_TO_CONSOLE: "false" },
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    assert.equal(code, 0, `the e2e process exited with ${String(code)}; it printed: ${stdout}`);
    const output = JSON.parse(stdout) as {
      backend: string;
      runnerId: string;
      sum: number;
      failed: string;
      who: { pid: number; ppid: number };
      logs: string[];
      runners: { id: string; kind: string; pid: number }[];
      pid: number;
    };
    assert.equal(output.backend, "sqlite");
    assert.ok(existsSync(sqlitePath));
    assert.equal(output.sum, 5);
    assert.match(output.failed, /TypeError: bad input/);
    assert.equal(output.who.ppid, output.pid);
    assert.deepEqual(
      output.logs.map((line) => line.replace(/pid \d+/, "pid N")),
      ["line 0 from pid N", "line 1 from pid N", "last line"],
    );
    assert.deepEqual(output.runners, [{ id: output.runnerId, kind: "process", pid: output.pid }]);
    assert.equal(pidExists(output.who.pid), false);
  });
});
