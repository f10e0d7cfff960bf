import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RetryError, SerializationError, TaskFailedError } from "../../src/core/errors.js";
import type { Backend } from "../../src/ports/backend.js";
import type { InvocationRecord } from "../../src/ports/records.js";
import { STARTED_STATUS } from "../../src/core/status.js";
import { planRecovery, planTransition } from "../../src/core/transition.js";
import type { Nenc } from "../../src/runtime/app.js";
import { mostHeld } from "../../src/runtime/worker.js";
import { WriteBatcher } from "../../src/runtime/write-batcher.js";
import { eventually, newInvocation, openApp, remoteRunner, sleep, type BackendFixture, type TestApp } from "./harness.js";

class FlakyError extends Error {
  override name = "FlakyError";
}

/** Define the tasks the worker cases use on an app (every process of an app defines the same tasks). */
function defineTasks(app: Nenc) {
  let flakyCalls = 0;
  return {
    add: app.task("add", async (a: number, b: number) => a + b),
    echo: app.task("echo", async (value: unknown) => value),
    /** Logs each line after an await: the task's context follows it across awaits. */
    chatty: app.task("chatty", async (n: number) => {
      for (let i = 0; i < n; i++) {
        await sleep(1);
        app.logger.info(`line ${i}`);
      }
      return n;
    }),
    boom: app.task("boom", async (message: string) => {
      throw new TypeError(message);
    }),
    /** Not async: its value comes back without a promise. */
    syncAdd: app.task("syncAdd", (a: number, b: number) => a + b),
    /** Returns something whose `then` throws when read (a thenable gone wrong). */
    trap: app.task("trap", () => ({
      get then(): unknown {
        throw new TypeError("then is a trap");
      },
    })),
    flaky: app.task(
      "flaky",
      async (failures: number) => {
        if (flakyCalls++ < failures) throw new FlakyError(`failure ${flakyCalls}`);
        return flakyCalls;
      },
      { maxRetries: 5, retryFor: [FlakyError], retryBackoffMs: 5, retryBackoffMaxMs: 20 },
    ),
    retryAlways: app.task(
      "retryAlways",
      async () => {
        throw new RetryError("again");
      },
      { maxRetries: 2, retryBackoffMs: 1, retryBackoffMaxMs: 5 },
    ),
    sleepy: app.task("sleepy", async (ms: number) => {
      await sleep(ms);
      return "slept";
    }),
  };
}

export function workerCases(fixture: BackendFixture): void {
  const withWorker = (fn: (t: TestApp, tasks: ReturnType<typeof defineTasks>) => Promise<void>) => async () => {
    const opened = await openApp(fixture);
    const tasks = defineTasks(opened.app);
    await opened.app.startWorker({ concurrency: 8, heartbeat: "inline" });
    try {
      await fn(opened, tasks);
    } finally {
      await opened.app.close();
    }
  };

  describe(`${fixture.name}: results and errors`, () => {
    it(
      "runs an invocation and returns its result, with the whole history",
      withWorker(async ({ app }, { add }) => {
        const inv = await add.invoke(2, 3);
        assert.equal(await inv.result(), 5);
        assert.equal(await inv.status(), "SUCCESS");
        const history = await inv.history();
        assert.deepEqual(
          history.map((h) => h.status),
          ["REGISTERED", "PENDING", "RUNNING", "SUCCESS"],
        );
        assert.equal(history[2]?.pid, process.pid);
        assert.ok(history[2]?.hostname);
        assert.equal(await app.invocation<number>(inv.id).result(), 5, "a handle from the id sees the same");
      }),
    );

    it(
      "carries Date, Map, Set, BigInt, undefined and Error through arguments and results",
      withWorker(async (_t, { echo }) => {
        const value = {
          when: new Date(0),
          map: new Map([["k", 1n]]),
          set: new Set([1, 2]),
          nothing: undefined,
          err: new RangeError("r"),
          nan: NaN,
          $nenc: "literal",
        };
        const back = (await (await echo.invoke(value)).result()) as typeof value;
        assert.deepEqual(back.when, new Date(0));
        assert.deepEqual(back.map, new Map([["k", 1n]]));
        assert.deepEqual(back.set, new Set([1, 2]));
        assert.ok("nothing" in back && back.nothing === undefined);
        assert.ok(back.err instanceof Error && back.err.name === "RangeError" && back.err.message === "r");
        assert.ok(Number.isNaN(back.nan));
        assert.equal(back.$nenc, "literal");
      }),
    );

    it(
      "rejects result() of a failed task with its error",
      withWorker(async (_t, { boom }) => {
        const inv = await boom.invoke("bad input");
        await assert.rejects(inv.result(), (error: unknown) => {
          assert.ok(error instanceof TaskFailedError);
          assert.equal(error.failure.name, "TypeError");
          assert.equal(error.failure.message, "bad input");
          return true;
        });
        assert.equal(await inv.status(), "FAILED");
      }),
    );

    it(
      "records a task that is not async by the value it returns, and one whose result's then throws as FAILED",
      withWorker(async (_t, { syncAdd, trap }) => {
        const sum = await syncAdd.invoke(2, 5);
        assert.equal(await sum.result(), 7);
        const trapped = await trap.invoke();
        await assert.rejects(trapped.result({ timeoutMs: 10_000 }), (error: unknown) => {
          assert.ok(error instanceof TaskFailedError);
          assert.equal(error.failure.message, "then is a trap");
          return true;
        });
        assert.equal(await trapped.status(), "FAILED");
        assert.equal(await (await syncAdd.invoke(1, 1)).result(), 2, "the worker carries on");
      }),
    );

    it(
      "refuses an argument it cannot carry at invoke, naming it",
      withWorker(async ({ backend }, { echo }) => {
        await assert.rejects(echo.invoke({ callback: () => 1 }), (error: unknown) => {
          assert.ok(error instanceof SerializationError);
          assert.match(error.message, /argument 0 of echo\.callback is a function/);
          return true;
        });
        assert.equal((await backend.state.list({})).length, 0, "nothing was stored");
      }),
    );

    it(
      "stores log lines with the invocation, stamped with its attempt and runner",
      withWorker(async (_t, { chatty }) => {
        const inv = await chatty.invoke(3);
        await inv.result();
        const logs = await inv.logs();
        assert.deepEqual(
          logs.map((l) => l.message),
          ["line 0", "line 1", "line 2"],
        );
        assert.ok(logs.every((l) => l.attempt === 1 && l.runnerId.length > 0 && l.level === "info"));
      }),
    );

    /** add(i, plus) for i below count, all parallelized and awaited at once: every sum comes back. */
    const sumsComeBack = (count: number, plus: number) =>
      withWorker(async (_t, { add }) => {
        const invs = await add.parallelize(Array.from({ length: count }, (_, i) => [i, plus] as [number, number]));
        const results = await Promise.all(invs.map((inv) => inv.result()));
        assert.deepEqual(
          results,
          Array.from({ length: count }, (_, i) => i + plus),
        );
      });

    it("routes parallelize batches and returns every result", sumsComeBack(250, 1));

    it("resolves thousands of result() calls awaited at once", sumsComeBack(2000, 2));
  });

  describe(`${fixture.name}: calls`, () => {
    it("stores each invocation's call: its task and arguments, equal for equal arguments in any key order", async () => {
      const { app, backend } = await openApp(fixture);
      try {
        const order = app.task("order", async (_item: { sku: string; qty: number }, _note?: string) => undefined);
        const [first, same, other] = await order.parallelize([[{ sku: "a", qty: 1 }], [{ qty: 1, sku: "a" }], [{ sku: "a", qty: 2 }]]);
        const long = await order.invoke({ sku: "b", qty: 1 }, "n".repeat(200));
        const callOf = async (inv: { id: string } | undefined) => (await backend.state.get(inv!.id))?.callId;
        assert.equal(await callOf(first), 'order:[{"qty":1,"sku":"a"}]');
        assert.equal(await callOf(same), await callOf(first));
        assert.notEqual(await callOf(other), await callOf(first));
        assert.match((await callOf(long)) ?? "", /^order:#[\w-]{22}$/, "long arguments are digested");
      } finally {
        await app.close();
      }
    });
  });

  describe(`${fixture.name}: parallelize batches`, () => {
    /** The sizes of the register calls a parallelize() of `count` makes, with `env` on top of the fixture's. */
    async function batchSizes(count: number, env: Record<string, string>): Promise<{ sizes: number[]; backendSize: number }> {
      const { app, backend } = await openApp(fixture, { env: { ...fixture.env(), ...env } });
      try {
        const sizes: number[] = [];
        const register = backend.orchestrator.register.bind(backend.orchestrator);
        backend.orchestrator.register = (invocations) => {
          sizes.push(invocations.length);
          return register(invocations);
        };
        const noop = app.task("noop", async (_n: number) => undefined);
        const invs = await noop.parallelize(Array.from({ length: count }, (_, i) => [i] as [number]));
        assert.equal(new Set(invs.map((inv) => inv.id)).size, count);
        assert.equal((await backend.state.counts()).REGISTERED, count, "every one stored");
        return { sizes: sizes.sort((a, b) => b - a), backendSize: backend.capabilities.registerBatchSize };
      } finally {
        await app.close();
      }
    }

    it("stores them in batches of the backend's size by default, and of parallelBatchSize when it is set", async () => {
      const byBackend = await batchSizes(2500, {});
      const full = Math.floor(2500 / byBackend.backendSize);
      assert.deepEqual(byBackend.sizes, [
        ...Array<number>(full).fill(byBackend.backendSize),
        ...(2500 % byBackend.backendSize ? [2500 % byBackend.backendSize] : []),
      ]);
      assert.deepEqual((await batchSizes(20, { NENC_PARALLEL_BATCH_SIZE: "7" })).sizes, [7, 7, 6]);
    });
  });

  describe(`${fixture.name}: retries`, () => {
    it(
      "retries the errors in retryFor with backoff, then succeeds",
      withWorker(async (_t, { flaky }) => {
        const inv = await flaky.invoke(2);
        assert.equal(await inv.result(), 3);
        const statuses = (await inv.history()).map((h) => h.status);
        assert.deepEqual(statuses.filter((s) => s === "RETRY").length, 2);
        assert.equal((await inv.record()).retries, 2);
      }),
    );

    it(
      "always retries RetryError, up to maxRetries, then fails",
      withWorker(async (_t, { retryAlways }) => {
        const inv = await retryAlways.invoke();
        await assert.rejects(inv.result(), TaskFailedError);
        const statuses = (await inv.history()).map((h) => h.status);
        assert.equal(statuses.filter((s) => s === "RUNNING").length, 3, "first run plus maxRetries=2");
      }),
    );

    it(
      "does not retry an error outside retryFor",
      withWorker(async (_t, { boom }) => {
        const inv = await boom.invoke("x");
        await assert.rejects(inv.result());
        assert.ok(!(await inv.history()).some((h) => h.status === "RETRY"));
      }),
    );
  });

  describe(`${fixture.name}: bad input never takes a worker down`, () => {
    it(
      "fails an invocation of an unknown task with a clear error and keeps working",
      withWorker(async ({ app, backend }, { add }) => {
        const stray = newInvocation("noSuchTask", [1]);
        await backend.orchestrator.register([stray]);
        await assert.rejects(app.invocation(stray.id).result(), /no task named "noSuchTask"/);
        assert.equal(await (await add.invoke(1, 1)).result(), 2);
      }),
    );

    it(
      "fails an invocation whose stored arguments are corrupt and keeps working",
      withWorker(async ({ app, backend }, { add }) => {
        const corrupt = { ...newInvocation("add"), args: "{not json" };
        await backend.orchestrator.register([corrupt]);
        await assert.rejects(app.invocation(corrupt.id).result(), /stored arguments of invocation .* cannot be read/);
        assert.equal(await (await add.invoke(2, 2)).result(), 4);
      }),
    );
  });

  describe(`${fixture.name}: write batches`, () => {
    /** An invocation claimed to start by a runner of its own, and a batcher writing for it. */
    async function started(backend: Backend) {
      const runnerId = `batcher-${Math.random().toString(36).slice(2, 8)}`;
      await backend.orchestrator.registerRunner(remoteRunner(runnerId), Date.now());
      const inv = newInvocation("add", [1, 2]);
      await backend.orchestrator.register([inv]);
      const [claimed] = await backend.broker.claim(runnerId, 1, Date.now(), { start: true });
      assert.equal(claimed?.id, inv.id);
      const errors: unknown[] = [];
      const batcher = new WriteBatcher(backend, (_what, error) => errors.push(error));
      const state = { id: inv.id, status: STARTED_STATUS, attempt: claimed.attempt, owner: runnerId };
      return { runnerId, inv, batcher, state, errors };
    }
    const nextTick = () => new Promise((resolve) => setImmediate(resolve));

    it("applies one invocation's steps in the order they were made, though each went in a batch of its own", async () => {
      const { app, backend } = await openApp(fixture);
      try {
        const { runnerId, inv, batcher, state } = await started(backend);
        const [killed, rerouted] = [
          planTransition(state, "KILLED", { by: runnerId, at: Date.now() }),
          planTransition({ ...state, status: "KILLED" }, "REROUTED", { by: runnerId, at: Date.now() }),
        ];
        // Two ticks, two batches; the second may start while the first is in flight.
        const first = batcher.write(killed);
        await nextTick();
        const second = batcher.write(rerouted);
        assert.deepEqual(await Promise.all([first, second]), [true, true]);
        await batcher.drain();
        assert.equal((await backend.state.get(inv.id))?.status, "REROUTED");
      } finally {
        await app.close();
      }
    });

    it("tells the rest of a batch its outcome when one caller's callback throws, and reports the throw", async () => {
      const { app, backend } = await openApp(fixture);
      try {
        const { runnerId, batcher, state, errors } = await started(backend);
        const other = await started(backend);
        let heard: { error: Error | undefined; applied: boolean } | undefined;
        // One tick, one batch.
        batcher.transition(planTransition(state, "SUCCESS", { by: runnerId, at: Date.now(), result: "3" }), () => {
          throw new Error("a caller's bug");
        });
        batcher.transition(
          planTransition(other.state, "SUCCESS", { by: other.runnerId, at: Date.now(), result: "3" }),
          (error, applied) => {
            heard = { error, applied };
          },
        );
        await batcher.drain();
        assert.deepEqual(heard, { error: undefined, applied: true });
        assert.equal(errors.length, 1);
        assert.match((errors[0] as Error).message, /a caller's bug/);
        assert.equal((await backend.state.get(other.inv.id))?.status, "SUCCESS");
      } finally {
        await app.close();
      }
    });

    it("stores an invocation's log lines before its final status, though they went in an earlier batch", async () => {
      const { app, backend } = await openApp(fixture);
      try {
        const { runnerId, inv, batcher, state, errors } = await started(backend);
        const line = {
          invocationId: inv.id,
          attempt: state.attempt,
          runnerId,
          at: Date.now(),
          level: "info" as const,
          message: "last words",
        };
        batcher.log(line);
        await nextTick();
        const done = batcher.write(planTransition(state, "SUCCESS", { by: runnerId, at: Date.now(), result: "3" }));
        assert.equal(await done, true);
        await batcher.drain();
        assert.deepEqual(errors, []);
        assert.deepEqual(
          (await backend.state.logs(inv.id)).map((l) => l.message),
          ["last words"],
        );
        assert.equal((await backend.state.get(inv.id))?.status, "SUCCESS");
      } finally {
        await app.close();
      }
    });
  });

  describe(`${fixture.name}: claiming ahead`, () => {
    const statuses = (invs: { status(): Promise<string> }[]) => Promise.all(invs.map((inv) => inv.status()));
    const count = (list: string[], status: string) => list.filter((s) => s === status).length;

    it("claims batches ahead while tasks are short, and only free slots once a task was long", async () => {
      const { app, backend } = await openApp(fixture);
      const { add, sleepy } = defineTasks(app);
      try {
        await app.startWorker({ concurrency: 2, heartbeat: "inline" });
        for (let i = 0; i < 20; i++) assert.equal(await (await add.invoke(i, 1)).result(), i + 1);
        // Short bodies so far: besides the two it runs, it claims batches ahead (RUNNING, waiting for
        // a slot), as many as run within SHORT_BODY_MS and at most the backend's claimAhead.batches
        // of two: the 23 beyond those stay queued.
        const most = 2 * (1 + backend.capabilities.claimAhead.batches);
        const long = await sleepy.parallelize(Array.from({ length: most + 23 }, () => [100] as [number]));
        await eventually(async () => count(await statuses(long), "RUNNING") > 2, "invocations claimed ahead");
        await eventually(async () => count(await statuses(long), "SUCCESS") >= 2, "the first two to finish");
        const queued = count(await statuses(long), "REGISTERED");
        assert.ok(queued >= 23, `at most ${most} claimed, and ${long.length - queued} were`);
        // The first bodies were long: those held take the slots, and nothing more is claimed while
        // any is held.
        await eventually(async () => count(await statuses(long), "SUCCESS") >= 4, "two more to finish");
        assert.equal(count(await statuses(long), "REGISTERED"), queued, "no claim ahead once bodies are long");
        for (const inv of long) assert.equal(await inv.result({ timeoutMs: 20_000 }), "slept");
      } finally {
        await app.close();
      }
    });

    it("asks for at most the backend's claimAhead.claimSize in one claim, and that many while no-ops run", async () => {
      const { app, backend } = await openApp(fixture);
      const asked: number[] = [];
      const claim = backend.broker.claim.bind(backend.broker);
      backend.broker.claim = (runnerId, max, now, options) => {
        asked.push(max);
        return claim(runnerId, max, now, options);
      };
      const noop = app.task("noop", async (_n: number) => undefined);
      const { claimSize } = backend.capabilities.claimAhead;
      const total = 6 * claimSize;
      try {
        await noop.parallelize(Array.from({ length: total }, (_, i) => [i] as [number]));
        await app.startWorker({ concurrency: 50, heartbeat: "inline" });
        await eventually(async () => (await backend.state.counts()).SUCCESS === total, `all ${total} no-ops run`, 60_000);
        assert.ok(Math.max(...asked) <= Math.max(50, claimSize), `no claim above ${claimSize}: ${asked.join(" ")}`);
        assert.ok(asked.includes(claimSize), `some claim asked for ${claimSize}: ${asked.join(" ")}`);
      } finally {
        await app.close();
      }
    });

    it("holds at most mostHeld() while its final writes do not come back, and finishes them all once they do", async () => {
      const { app, backend } = await openApp(fixture);
      // The backend takes claims but keeps every write waiting until `release`: the worker runs
      // what it claimed and must then stop claiming, not pile up invocations it cannot finish.
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const transition = backend.orchestrator.transition.bind(backend.orchestrator);
      backend.orchestrator.transition = async (requests) => {
        await released;
        return transition(requests);
      };
      const noop = app.task("noop", async (_n: number) => undefined);
      const concurrency = 10;
      const bound = mostHeld(concurrency, backend.capabilities.claimAhead.batches);
      const total = bound + 300;
      try {
        await noop.parallelize(Array.from({ length: total }, (_, i) => [i] as [number]));
        const worker = await app.startWorker({ concurrency, heartbeat: "inline" });
        // Claiming ahead (no-ops are short) and then no further: the count it holds stays put.
        await eventually(async () => worker.activeCount > concurrency && worker.activeCount, "claims ahead");
        let held = -1;
        await eventually(async () => {
          const now = worker.activeCount;
          const still = now === held;
          held = now;
          await sleep(200);
          return still && worker.activeCount === now;
        }, "claiming to stop");
        assert.ok(held <= bound, `it holds ${held}, more than ${bound}`);
        assert.equal((await backend.state.counts()).REGISTERED, total - held, "what it does not hold is still queued");
        release();
        await eventually(async () => (await backend.state.counts()).SUCCESS === total, `all ${total} no-ops run`, 60_000);
      } finally {
        release();
        await app.close();
      }
    });

    it("on graceful stop gives back what it claimed ahead as well (KILLED -> REROUTED)", async () => {
      const { app } = await openApp(fixture);
      const { add, sleepy } = defineTasks(app);
      try {
        const worker = await app.startWorker({ concurrency: 1, heartbeat: "inline" });
        for (let i = 0; i < 10; i++) await (await add.invoke(i, 1)).result();
        const long = await sleepy.parallelize([[300], [300], [300]]);
        await eventually(async () => count(await statuses(long), "RUNNING") === 3, "one running and two claimed ahead");
        await worker.stop();
        assert.deepEqual(await statuses(long), ["REROUTED", "REROUTED", "REROUTED"]);
        for (const inv of long) {
          assert.deepEqual(
            (await inv.history()).map((h) => h.status),
            ["REGISTERED", "PENDING", "RUNNING", "KILLED", "REROUTED"],
          );
        }
      } finally {
        await app.close();
      }
    });
  });

  describe(`${fixture.name}: stopping and dying`, () => {
    it("on graceful stop reroutes running invocations (KILLED -> REROUTED) and another worker finishes them", async () => {
      const first = await openApp(fixture);
      const shared = first.backend.capabilities.sharedAcrossProcesses;
      const second = shared ? await openApp(fixture, { env: first.env }) : first;
      const tasks = defineTasks(first.app);
      if (shared) defineTasks(second.app);
      try {
        const stopping = await first.app.startWorker({ concurrency: 2, heartbeat: "inline" });
        const inv = await tasks.sleepy.invoke(300);
        await eventually(async () => (await inv.status()) === "RUNNING", "it to run");
        await stopping.stop();
        assert.equal(await inv.status(), "REROUTED");
        await second.app.startWorker({ concurrency: 2, heartbeat: "inline" });
        assert.equal(await inv.result({ timeoutMs: 20_000 }), "slept");
        const statuses = (await inv.history()).map((h) => h.status);
        assert.deepEqual(statuses, ["REGISTERED", "PENDING", "RUNNING", "KILLED", "REROUTED", "PENDING", "RUNNING", "SUCCESS"]);
      } finally {
        await first.app.close();
        if (shared) await second.app.close();
      }
    });

    it("aborts the signal of a task whose worker stops, so the task can stop early", async () => {
      const { app } = await openApp(fixture);
      let seen: string | undefined;
      let started = false;
      const watcher = app.task("watchAbort", async () => {
        started = true;
        const signal = app.current()!.signal;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 10_000);
          signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
        });
        seen = signal.aborted ? "aborted" : "timed out";
        return seen;
      });
      try {
        const worker = await app.startWorker({ concurrency: 1, heartbeat: "inline" });
        const inv = await watcher.invoke();
        // RUNNING is recorded by the claim, a moment before the body starts: wait for the body.
        await eventually(async () => started, "its body to start");
        await worker.stop();
        await eventually(async () => seen !== undefined, "the task to see its signal");
        assert.equal(seen, "aborted");
        assert.equal(await inv.status(), "REROUTED");
      } finally {
        await app.close();
      }
    });

    it("does not run what a claim got for the runner id it had before it was declared dead", async () => {
      // The claim is applied on the backend, but its reply reaches the worker only after the
      // runner was declared dead and its work recovered: running it would run an attempt taken
      // from it, beside the one that re-runs it.
      const base = await openApp(fixture);
      let holdReply: Promise<void> | undefined;
      let release = () => {};
      const gated: Backend = {
        kind: base.backend.kind,
        capabilities: base.backend.capabilities,
        orchestrator: base.backend.orchestrator,
        state: base.backend.state,
        broker: {
          claim: async (...args) => {
            const claimed = await base.backend.broker.claim(...args);
            if (claimed.length && holdReply) {
              const held = holdReply;
              holdReply = undefined;
              await held;
            }
            return claimed;
          },
          queueLength: (now) => base.backend.broker.queueLength(now),
          subscribe: (listener) => base.backend.broker.subscribe(listener),
        },
        close: async () => {}, // the base app closes it
      };
      const { app } = await openApp(fixture, { env: base.env, extra: { backend: gated, heartbeatIntervalMs: 50 } });
      const attempts: number[] = [];
      const once = app.task("recordAttempt", async () => {
        attempts.push(app.current()!.attempt);
        return "ran";
      });
      try {
        const worker = await app.startWorker({ concurrency: 2, heartbeat: "inline", recovery: false });
        holdReply = new Promise<void>((resolve) => (release = resolve));
        const inv = await once.invoke();
        await eventually(
          async () => (await inv.status()) === "RUNNING" && holdReply === undefined,
          "the claim to be applied, its reply held",
        );
        const oldRunner = worker.runnerId;
        await declareDead(gated, oldRunner, await inv.record());
        await eventually(async () => worker.runnerId !== oldRunner, "the runner to notice it was declared dead");
        release();
        assert.equal(await inv.result({ timeoutMs: 20_000 }), "ran");
        const final = await inv.record();
        assert.deepEqual(attempts, [final.attempt], "the body ran once, under the attempt that finished");
      } finally {
        release();
        await app.close();
        await base.app.close();
      }
    });

    it("drops the work of a runner declared dead: it writes nothing more and carries on as a new runner", async () => {
      const opened = await openApp(fixture, { extra: { heartbeatIntervalMs: 50 } });
      const { app, backend } = opened;
      const { sleepy, add } = defineTasks(app);
      try {
        const worker = await app.startWorker({ concurrency: 2, heartbeat: "inline", recovery: false });
        const inv = await sleepy.invoke(400);
        await eventually(async () => (await inv.status()) === "RUNNING", "it to run");
        const oldRunner = worker.runnerId;
        await declareDead(backend, oldRunner, await inv.record());
        await eventually(async () => worker.runnerId !== oldRunner, "the runner to notice it was declared dead");
        assert.equal(await inv.result({ timeoutMs: 20_000 }), "slept", "the new runner id re-ran it");
        const history = await inv.history();
        const afterRecovery = history.slice(history.findIndex((h) => h.status === "REROUTED") + 1);
        assert.ok(
          afterRecovery.every((h) => h.runnerId !== oldRunner),
          "the old runner wrote nothing after recovery",
        );
        assert.equal(await (await add.invoke(1, 2)).result(), 3);
      } finally {
        await app.close();
      }
    });
  });
}

/** What recovery does to a silent runner, done by hand: declared dead, its invocation taken back. */
async function declareDead(backend: Backend, runnerId: string, record: InvocationRecord): Promise<void> {
  await backend.orchestrator.retireRunners([runnerId], "dead", Date.now());
  await backend.orchestrator.transition(planRecovery(record, "recoverer", Date.now()));
}
