import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { planTransition } from "../../src/core/transition.js";
import { hostId } from "../../src/runtime/host.js";
import { Recovery } from "../../src/runtime/recovery.js";
import type { Backend } from "../../src/ports/backend.js";
import { newInvocation, openApp, remoteRunner, type BackendFixture } from "./harness.js";

/** Recovery, with time injected: no sleeping, no real runners. */
export function recoveryCases(fixture: BackendFixture): void {
  const setup = async () => {
    const clock = new ManualClock(Date.now());
    const opened = await openApp(fixture, { clock });
    const recoverer = (holder: string) =>
      new Recovery({
        backend: opened.backend,
        config: opened.app.config,
        clock,
        holder: () => holder,
        onError: (e) => {
          throw e;
        },
      });
    return { ...opened, clock, recoverer };
  };

  /** An invocation claimed by `runner` and moved on to `status` through the owner's own transitions. */
  const owned = async (b: Backend, runner: string, now: number, path: ("RUNNING" | "PAUSED" | "RESUMED")[] = ["RUNNING"]) => {
    const inv = newInvocation("t", [], now);
    await b.orchestrator.register([inv]);
    const [claimed] = await b.broker.claim(runner, 1, now);
    assert.equal(claimed?.id, inv.id);
    let state = {
      id: inv.id,
      status: "PENDING" as const as import("../../src/core/status.js").Status,
      attempt: claimed.attempt,
      owner: runner as string | null,
    };
    for (const to of path) {
      const request = planTransition(state, to, { by: runner, at: now });
      assert.deepEqual(await b.orchestrator.transition([request]), [true]);
      state = { ...state, status: to };
    }
    return inv.id;
  };

  describe(`${fixture.name}: recovery (injected clock)`, () => {
    it("leaves a live runner's work alone and takes a silent runner's back after runnerDeadAfterMs", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        const deadAfter = app.config.runnerDeadAfterMs;
        await b.orchestrator.registerRunner(remoteRunner("silent"), clock.now());
        const running = await owned(b, "silent", clock.now());
        const recovery = recoverer("recoverer");
        clock.advance(deadAfter - 1);
        assert.deepEqual((await recovery.pass())?.recovered, []);
        assert.equal((await b.state.get(running))?.status, "RUNNING");
        clock.advance(2);
        const report = await recovery.pass();
        assert.deepEqual(report?.deadRunners, ["silent"]);
        assert.deepEqual(report?.recovered, [running]);
        const history = (await b.state.history(running)).map((h) => h.status);
        assert.deepEqual(history, ["REGISTERED", "PENDING", "RUNNING", "RUNNING_RECOVERY", "REROUTED"]);
        await b.orchestrator.registerRunner(remoteRunner("healthy"), clock.now());
        const [again] = await b.broker.claim("healthy", 1, clock.now());
        assert.equal(again?.id, running);
        assert.equal(again?.attempt, 2);
        assert.equal(await b.orchestrator.heartbeat("silent", clock.now()), false, "a dead runner's heartbeat is refused");
      } finally {
        await app.close();
      }
    });

    it("does not report as dead a runner that stopped after the pass read the runners", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        await b.orchestrator.registerRunner(remoteRunner("stops"), clock.now());
        clock.advance(app.config.runnerDeadAfterMs + 1);
        // The pass reads the runners (silent long enough to look dead), and the runner stops
        // before the pass retires it: the stop stands, and the report names nobody.
        const runners = b.orchestrator.runners.bind(b.orchestrator);
        b.orchestrator.runners = async () => {
          const read = await runners();
          await b.orchestrator.retireRunners(["stops"], "stopped", clock.now());
          return read;
        };
        const report = await recoverer("recoverer").pass();
        assert.deepEqual(report?.deadRunners, []);
        const stops = (await runners()).find((r) => r.id === "stops");
        assert.deepEqual([stops?.stoppedAt, stops?.deadAt], [clock.now(), null]);
      } finally {
        await app.close();
      }
    });

    it("recovers every owned status: PENDING, RUNNING, PAUSED and RESUMED", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        await b.orchestrator.registerRunner(remoteRunner("gone"), clock.now());
        const pending = await owned(b, "gone", clock.now(), []);
        const paused = await owned(b, "gone", clock.now(), ["RUNNING", "PAUSED"]);
        const resumed = await owned(b, "gone", clock.now(), ["RUNNING", "PAUSED", "RESUMED"]);
        clock.advance(app.config.runnerDeadAfterMs + 1);
        const report = await recoverer("r").pass();
        assert.deepEqual(new Set(report?.recovered), new Set([pending, paused, resumed]));
        assert.deepEqual((await b.state.history(pending)).map((h) => h.status).slice(-2), ["PENDING_RECOVERY", "REROUTED"]);
        for (const id of [paused, resumed]) {
          assert.deepEqual((await b.state.history(id)).map((h) => h.status).slice(-2), ["RUNNING_RECOVERY", "REROUTED"]);
        }
        assert.equal(await b.broker.queueLength(clock.now()), 3);
      } finally {
        await app.close();
      }
    });

    it("reroutes an unowned status left behind (KILLED without its REROUTED)", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        await b.orchestrator.registerRunner(remoteRunner("stopper"), clock.now());
        const id = await owned(b, "stopper", clock.now());
        const killed = planTransition({ id, status: "RUNNING", attempt: 1, owner: "stopper" }, "KILLED", {
          by: "stopper",
          at: clock.now(),
        });
        await b.orchestrator.transition([killed]);
        const recovery = recoverer("r");
        assert.deepEqual((await recovery.pass())?.recovered, [], "not at once: its runner may be about to reroute it");
        clock.advance(app.config.runnerDeadAfterMs + 1);
        assert.deepEqual((await recovery.pass())?.recovered, [id]);
        assert.equal((await b.state.get(id))?.status, "REROUTED");
      } finally {
        await app.close();
      }
    });

    it("finds a runner whose process is gone from this host without waiting for its heartbeat", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
        const deadPid = Number(child.stdout);
        await b.orchestrator.registerRunner({ ...remoteRunner("killed"), hostId, pid: deadPid }, clock.now());
        const id = await owned(b, "killed", clock.now());
        const report = await recoverer("r").pass();
        assert.deepEqual(report?.deadRunners, ["killed"]);
        assert.deepEqual(report?.recovered, [id]);
      } finally {
        await app.close();
      }
    });

    it("lets one recoverer act at a time, and breaks the lease of a holder whose process is gone", async () => {
      const { app, backend: b, clock, recoverer } = await setup();
      try {
        assert.notEqual(await recoverer("first").pass(), null);
        assert.equal(await recoverer("second").pass(), null, "the lease is held");
        clock.advance(app.config.recoveryLeaseMs + 1);
        assert.notEqual(await recoverer("second").pass(), null, "an expired lease passes on");
        const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
        await b.orchestrator.registerRunner({ ...remoteRunner("holder"), hostId, pid: Number(child.stdout) }, clock.now());
        assert.equal(await b.orchestrator.acquireLease("recovery", "holder", clock.now(), 60_000, "second"), true);
        assert.notEqual(await recoverer("third").pass(), null, "a dead holder on this host loses the lease at once");
      } finally {
        await app.close();
      }
    });
  });
}
