import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planTransition, afterTransition, planRecovery } from "../../src/core/transition.js";
import { OwnershipError } from "../../src/core/errors.js";
import type { Backend } from "../../src/ports/backend.js";
import { newInvocation, openApp, remoteRunner, type BackendFixture } from "./harness.js";

/** The ports themselves: compare-and-set, ownership, fencing, claims, logs, leases. */
export function stateCases(fixture: BackendFixture): void {
  const withBackend = (fn: (backend: Backend) => Promise<void>) => async () => {
    const { app, backend } = await openApp(fixture);
    try {
      // Claims are only for registered, live runners.
      for (const id of ["runner-a", "runner-b", "a", "b", "c", "d", "r", "new", "healthy"]) {
        await backend.orchestrator.registerRunner(remoteRunner(id), Date.now());
      }
      await fn(backend);
    } finally {
      await app.close();
    }
  };

  describe(`${fixture.name}: state machine and ownership`, () => {
    it(
      "registers an invocation REGISTERED and claimable, with its first history entry",
      withBackend(async (b) => {
        const inv = newInvocation("t", [1]);
        await b.orchestrator.register([inv]);
        const record = await b.state.get(inv.id);
        assert.equal(record?.status, "REGISTERED");
        assert.equal(record?.attempt, 0);
        assert.equal(record?.owner, null);
        assert.equal(record?.args, "[1]");
        assert.equal(await b.broker.queueLength(Date.now()), 1);
        assert.deepEqual(
          (await b.state.history(inv.id)).map((h) => h.status),
          ["REGISTERED"],
        );
      }),
    );

    it(
      "registers a batch whose invocations differ in task, parent and ready time, each as it says",
      withBackend(async (b) => {
        const now = Date.now();
        const plain = newInvocation("t", [1], now - 10);
        const other = { ...newInvocation("u", [2], now - 10), parentId: plain.id };
        const later = { ...newInvocation("t", [3], now - 10), readyAt: now + 60_000 };
        await b.orchestrator.register([plain, other, later]);
        const stored = await Promise.all([plain, other, later].map((inv) => b.state.get(inv.id)));
        assert.deepEqual(
          stored.map((r) => [r?.taskId, r?.parentId, r?.createdAt, r?.readyAt]),
          [
            ["t", null, now - 10, now - 10],
            ["u", plain.id, now - 10, now - 10],
            ["t", null, now - 10, now + 60_000],
          ],
        );
        assert.deepEqual(
          (await b.broker.claim("r", 10, now)).map((c) => [c.id, c.taskId, c.parentId]),
          [
            [plain.id, "t", null],
            [other.id, "u", plain.id],
          ],
          "the delayed one is not claimable yet",
        );
      }),
    );

    it(
      "claims once: the claimer owns it at attempt 1 and nobody else gets it",
      withBackend(async (b) => {
        const inv = newInvocation("t");
        await b.orchestrator.register([inv]);
        const first = await b.broker.claim("runner-a", 10, Date.now());
        const second = await b.broker.claim("runner-b", 10, Date.now());
        assert.deepEqual(
          first.map((c) => [c.id, c.attempt]),
          [[inv.id, 1]],
        );
        assert.equal(second.length, 0);
        const record = await b.state.get(inv.id);
        assert.equal(record?.status, "PENDING");
        assert.equal(record?.owner, "runner-a");
        assert.equal(await b.broker.queueLength(Date.now()), 0);
      }),
    );

    it(
      "claims oldest first and no more than asked",
      withBackend(async (b) => {
        const base = Date.now() - 1000;
        const invs = [0, 1, 2, 3, 4].map((i) => newInvocation("t", [i], base + i));
        await b.orchestrator.register(invs);
        const claimed = await b.broker.claim("r", 3, Date.now());
        assert.deepEqual(
          claimed.map((c) => c.id),
          invs.slice(0, 3).map((i) => i.id),
        );
      }),
    );

    it(
      "gives nothing to a runner that is unknown or retired",
      withBackend(async (b) => {
        await b.orchestrator.register([newInvocation("t")]);
        assert.equal((await b.broker.claim("never-registered", 1, Date.now())).length, 0);
        await b.orchestrator.retireRunners(["a"], "dead", Date.now());
        assert.equal((await b.broker.claim("a", 1, Date.now())).length, 0);
        await b.orchestrator.retireRunners(["b"], "stopped", Date.now());
        assert.equal((await b.broker.claim("b", 1, Date.now())).length, 0);
        assert.equal((await b.broker.claim("c", 1, Date.now())).length, 1);
      }),
    );

    it(
      "claims to start: RUNNING at once, with PENDING and RUNNING in its history",
      withBackend(async (b) => {
        const base = Date.now() - 1000;
        const invs = [0, 1, 2].map((i) => newInvocation("t", [i], base + i));
        await b.orchestrator.register(invs);
        const at = Date.now();
        const started = await b.broker.claim("a", 2, at, { start: true });
        assert.deepEqual(
          started.map((c) => [c.id, c.attempt]),
          [
            [invs[0]!.id, 1],
            [invs[1]!.id, 1],
          ],
        );
        assert.equal((await b.broker.claim("b", 10, at, { start: true })).length, 1, "only the third is left");
        const record = await b.state.get(invs[0]!.id);
        assert.equal(record?.status, "RUNNING");
        assert.equal(record?.owner, "a");
        assert.equal(record?.readyAt, null);
        assert.deepEqual(
          (await b.state.history(invs[0]!.id)).map((h) => [h.status, h.attempt, h.runnerId, h.at]),
          [
            ["REGISTERED", 0, null, base],
            ["PENDING", 1, "a", at],
            ["RUNNING", 1, "a", at],
          ],
        );
        const counts = await b.state.counts();
        assert.equal(counts.RUNNING, 3);
        assert.equal(counts.PENDING ?? 0, 0);
        assert.equal(await b.broker.queueLength(Date.now()), 0);
        // Its owner finishes it from RUNNING at the claimed attempt; nobody else can.
        const running = { id: invs[0]!.id, status: "RUNNING" as const, attempt: 1, owner: "a" };
        const foreign = {
          ...planTransition(running, "SUCCESS", { by: "a", at, result: "1" }),
          expect: { status: "RUNNING" as const, attempt: 1, owner: "b" },
        };
        assert.deepEqual(await b.orchestrator.transition([foreign]), [false]);
        assert.deepEqual(await b.orchestrator.transition([planTransition(running, "SUCCESS", { by: "a", at, result: "1" })]), [true]);
        assert.equal((await b.state.get(invs[0]!.id))?.status, "SUCCESS");
      }),
    );

    it(
      "claims nothing to start for a retired runner, and a started claim is recovered like a run",
      withBackend(async (b) => {
        const at = Date.now();
        const inv = newInvocation("t", [], at);
        await b.orchestrator.register([inv]);
        await b.orchestrator.retireRunners(["d"], "stopped", at);
        assert.equal((await b.broker.claim("d", 1, at, { start: true })).length, 0);
        const [claimed] = await b.broker.claim("a", 1, at, { start: true });
        assert.equal(claimed?.attempt, 1);
        await b.orchestrator.retireRunners(["a"], "dead", at);
        const recovery = planRecovery({ id: inv.id, status: "RUNNING", attempt: 1, owner: "a" }, "recoverer", at);
        assert.deepEqual(await b.orchestrator.transition(recovery), [true, true]);
        const [again] = await b.broker.claim("b", 1, at, { start: true });
        assert.equal(again?.attempt, 2, "the next start is a new attempt");
        const late = planTransition({ id: inv.id, status: "RUNNING", attempt: 1, owner: "a" }, "SUCCESS", { by: "a", at, result: "1" });
        assert.deepEqual(await b.orchestrator.transition([late]), [false], "the dead runner's result is refused");
      }),
    );

    it(
      "does not claim before readyAt",
      withBackend(async (b) => {
        const now = Date.now();
        const inv = { ...newInvocation("t", [], now), readyAt: now + 60_000 };
        await b.orchestrator.register([inv]);
        assert.equal((await b.broker.claim("r", 10, now)).length, 0);
        assert.equal((await b.broker.claim("r", 10, now + 60_000)).length, 1);
      }),
    );

    it(
      "applies a compare-and-set only while its expectation holds",
      withBackend(async (b) => {
        const inv = newInvocation("t");
        await b.orchestrator.register([inv]);
        const [claimed] = await b.broker.claim("a", 1, Date.now());
        assert.ok(claimed);
        const pending = { id: inv.id, status: "PENDING" as const, attempt: claimed.attempt, owner: "a" };
        const toRunning = planTransition(pending, "RUNNING", { by: "a", at: Date.now() });
        assert.deepEqual(await b.orchestrator.transition([toRunning]), [true]);
        // The same request again: the status is no longer PENDING.
        assert.deepEqual(await b.orchestrator.transition([toRunning]), [false]);
        const running = afterTransition(toRunning);
        const wrongOwner = {
          ...planTransition(running, "SUCCESS", { by: "a", at: Date.now(), result: "1" }),
          expect: { status: "RUNNING" as const, attempt: 1, owner: "b" },
        };
        assert.deepEqual(await b.orchestrator.transition([wrongOwner]), [false]);
        const staleAttempt = {
          ...planTransition(running, "SUCCESS", { by: "a", at: Date.now(), result: "1" }),
          expect: { status: "RUNNING" as const, attempt: 0, owner: "a" },
        };
        assert.deepEqual(await b.orchestrator.transition([staleAttempt]), [false]);
        assert.equal((await b.state.get(inv.id))?.status, "RUNNING");
        const ok = planTransition(running, "SUCCESS", { by: "a", at: Date.now(), result: '"done"' });
        assert.deepEqual(await b.orchestrator.transition([ok]), [true]);
        const record = await b.state.get(inv.id);
        assert.equal(record?.status, "SUCCESS");
        assert.equal(record?.result, '"done"');
        assert.equal(record?.owner, null);
        assert.deepEqual(
          (await b.state.history(inv.id)).map((h) => h.status),
          ["REGISTERED", "PENDING", "RUNNING", "SUCCESS"],
        );
      }),
    );

    it(
      "applies each request of a mixed batch with its own values, and refuses only the stale one",
      withBackend(async (b) => {
        const base = Date.now() - 1000;
        const invs = [0, 1, 2, 3].map((i) => newInvocation(`t${i}`, [i], base + i));
        await b.orchestrator.register(invs);
        const [ca, cb, cc] = await b.broker.claim("a", 3, base + 10, { start: true });
        const [cd] = await b.broker.claim("b", 1, base + 11, { start: true });
        assert.ok(ca && cb && cc && cd);
        const running = (id: string, owner: string) => ({ id, status: "RUNNING" as const, attempt: 1, owner });
        const batch = [
          planTransition(running(ca.id, "a"), "SUCCESS", { by: "a", at: base + 20, result: '"first"' }),
          planTransition(running(cb.id, "a"), "RETRY", {
            by: "a",
            at: base + 21,
            error: '{"message":"boom"}',
            retries: 1,
            readyAt: base + 60_000,
          }),
          // Stale: it expects an attempt this invocation never had.
          {
            ...planTransition(running(cc.id, "a"), "SUCCESS", { by: "a", at: base + 22, result: '"late"' }),
            expect: { status: "RUNNING" as const, attempt: 7, owner: "a" },
          },
          planTransition(running(cd.id, "b"), "FAILED", { by: "b", at: base + 23, error: '{"message":"bad"}' }),
        ];
        assert.deepEqual(await b.orchestrator.transition(batch), [true, true, false, true]);
        const [ra, rb, rc, rd] = await Promise.all([ca, cb, cc, cd].map((c) => b.state.get(c.id)));
        assert.deepEqual([ra?.status, ra?.result, ra?.error, ra?.updatedAt], ["SUCCESS", '"first"', null, base + 20]);
        assert.deepEqual(
          [rb?.status, rb?.error, rb?.retries, rb?.readyAt, rb?.owner],
          ["RETRY", '{"message":"boom"}', 1, base + 60_000, null],
        );
        assert.deepEqual([rc?.status, rc?.result, rc?.owner], ["RUNNING", null, "a"]);
        assert.deepEqual([rd?.status, rd?.error, rd?.result, rd?.taskId], ["FAILED", '{"message":"bad"}', null, "t3"]);
        assert.deepEqual(
          (await b.state.history(cd.id)).map((h) => [h.status, h.runnerId, h.at]),
          [
            ["REGISTERED", null, base + 3],
            ["PENDING", "b", base + 11],
            ["RUNNING", "b", base + 11],
            ["FAILED", "b", base + 23],
          ],
        );
      }),
    );

    it("refuses a non-owner in core before anything reaches the backend", () => {
      const running = { id: "x", status: "RUNNING" as const, attempt: 1, owner: "a" };
      assert.throws(() => planTransition(running, "SUCCESS", { by: "b", at: 0 }), OwnershipError);
    });

    it(
      "applies a batch in order, so chained steps land together",
      withBackend(async (b) => {
        const inv = newInvocation("t");
        await b.orchestrator.register([inv]);
        const [claimed] = await b.broker.claim("a", 1, Date.now());
        assert.ok(claimed);
        const now = Date.now();
        const running = planTransition({ id: inv.id, status: "PENDING", attempt: 1, owner: "a" }, "RUNNING", { by: "a", at: now });
        const killed = planTransition(afterTransition(running), "KILLED", { by: "a", at: now });
        const rerouted = planTransition(afterTransition(killed), "REROUTED", { by: "a", at: now });
        assert.deepEqual(await b.orchestrator.transition([running, killed, rerouted]), [true, true, true]);
        assert.equal((await b.state.get(inv.id))?.status, "REROUTED");
        const [again] = await b.broker.claim("b", 1, Date.now());
        assert.equal(again?.attempt, 2, "a new claim bumps the fencing attempt");
      }),
    );

    it(
      "stores a failure's error and a retry's count and delay",
      withBackend(async (b) => {
        const inv = newInvocation("t");
        await b.orchestrator.register([inv]);
        await b.broker.claim("a", 1, Date.now());
        const now = Date.now();
        const running = planTransition({ id: inv.id, status: "PENDING", attempt: 1, owner: "a" }, "RUNNING", { by: "a", at: now });
        const retry = planTransition(afterTransition(running), "RETRY", {
          by: "a",
          at: now,
          error: '{"name":"E","message":"m"}',
          retries: 1,
          readyAt: now + 5000,
        });
        assert.deepEqual(await b.orchestrator.transition([running, retry]), [true, true]);
        const record = await b.state.get(inv.id);
        assert.equal(record?.status, "RETRY");
        assert.equal(record?.retries, 1);
        assert.equal(record?.error, '{"name":"E","message":"m"}');
        assert.equal((await b.broker.claim("a", 1, now)).length, 0, "not before its backoff");
        assert.equal((await b.broker.claim("a", 1, now + 5000)).length, 1);
      }),
    );
  });

  describe(`${fixture.name}: fencing`, () => {
    it(
      "refuses every write of an attempt that was taken back",
      withBackend(async (b) => {
        const at = Date.now();
        await b.orchestrator.registerRunner(remoteRunner("old"), at);
        const inv = newInvocation("t", [], at);
        await b.orchestrator.register([inv]);
        await b.broker.claim("old", 1, at);
        const running = planTransition({ id: inv.id, status: "PENDING", attempt: 1, owner: "old" }, "RUNNING", { by: "old", at });
        await b.orchestrator.transition([running]);
        // Recovery takes it back and another runner claims it.
        await b.orchestrator.retireRunners(["old"], "dead", at);
        const recovery = planRecovery(afterTransition(running), "recoverer", at);
        assert.deepEqual(
          recovery.map((r) => r.to),
          ["RUNNING_RECOVERY", "REROUTED"],
        );
        assert.deepEqual(await b.orchestrator.transition(recovery), [true, true]);
        const [reclaimed] = await b.broker.claim("new", 1, at);
        assert.equal(reclaimed?.attempt, 2);
        // The old runner wakes up: its heartbeat, result and log lines are all refused.
        assert.equal(await b.orchestrator.heartbeat("old", at + 1), false);
        const lateResult = planTransition(afterTransition(running), "SUCCESS", { by: "old", at, result: '"stale"' });
        assert.deepEqual(await b.orchestrator.transition([lateResult]), [false]);
        const stored = await b.state.appendLogs([
          { invocationId: inv.id, attempt: 1, runnerId: "old", at, level: "info", message: "late" },
        ]);
        assert.equal(stored, 0);
        assert.equal(
          await b.state.appendLogs([{ invocationId: inv.id, attempt: 2, runnerId: "new", at, level: "info", message: "current" }]),
          1,
        );
        assert.deepEqual(
          (await b.state.logs(inv.id)).map((l) => l.message),
          ["current"],
        );
        const record = await b.state.get(inv.id);
        assert.equal(record?.owner, "new");
        assert.equal(record?.result, null);
      }),
    );
  });

  describe(`${fixture.name}: runners, leases, queries`, () => {
    it(
      "keeps runner records and refuses heartbeats once retired",
      withBackend(async (b) => {
        const at = Date.now();
        await b.orchestrator.registerRunner(remoteRunner("r1"), at);
        await b.orchestrator.registerRunner(remoteRunner("r2"), at);
        assert.equal(await b.orchestrator.heartbeat("r1", at + 500), true);
        await b.orchestrator.retireRunners(["r2"], "stopped", at + 600);
        assert.equal(await b.orchestrator.heartbeat("r2", at + 700), false);
        assert.equal(await b.orchestrator.heartbeat("nobody", at), false);
        const runners = new Map((await b.orchestrator.runners()).map((r) => [r.id, r]));
        assert.equal(runners.get("r1")?.heartbeatAt, at + 500);
        assert.equal(runners.get("r1")?.hostname, "elsewhere");
        assert.equal(runners.get("r2")?.stoppedAt, at + 600);
      }),
    );

    it(
      "retires a runner once: the first of stopped and dead stands, at its time",
      withBackend(async (b) => {
        const at = Date.now();
        for (const id of ["stops", "dies"]) await b.orchestrator.registerRunner(remoteRunner(id), at);
        assert.deepEqual(await b.orchestrator.retireRunners(["stops", "unknown"], "stopped", at + 100), ["stops"]);
        assert.deepEqual(await b.orchestrator.retireRunners(["dies"], "dead", at + 100), ["dies"]);
        // A recovery pass that read the runners before "stops" stopped, and found its connection
        // gone after it exited; a runner declared dead that stops before it noticed.
        assert.deepEqual(await b.orchestrator.retireRunners(["stops"], "dead", at + 200), []);
        assert.deepEqual(await b.orchestrator.retireRunners(["dies"], "stopped", at + 200), []);
        assert.deepEqual(await b.orchestrator.retireRunners(["stops"], "stopped", at + 300), []);
        const runners = new Map((await b.orchestrator.runners()).map((r) => [r.id, r]));
        assert.deepEqual(
          ["stops", "dies"].map((id) => [runners.get(id)?.stoppedAt, runners.get(id)?.deadAt]),
          [
            [at + 100, null],
            [null, at + 100],
          ],
        );
      }),
    );

    it(
      "grants a lease to one holder at a time, until it expires or its holder is known dead",
      withBackend(async (b) => {
        const now = Date.now();
        assert.equal(await b.orchestrator.acquireLease("recovery", "a", now, 1000), true);
        assert.equal(await b.orchestrator.acquireLease("recovery", "b", now + 10, 1000), false);
        assert.equal(await b.orchestrator.acquireLease("recovery", "a", now + 500, 1000), true, "renewal");
        assert.equal(await b.orchestrator.acquireLease("recovery", "b", now + 1200, 1000), false, "renewed until now+1500");
        assert.equal(await b.orchestrator.acquireLease("recovery", "b", now + 1200, 1000, "a"), true, "replacing a dead holder");
        assert.equal(await b.orchestrator.acquireLease("recovery", "a", now + 1300, 1000), false);
        await b.orchestrator.releaseLease("recovery", "b");
        assert.equal(await b.orchestrator.acquireLease("recovery", "a", now + 1300, 1000), true);
      }),
    );

    it(
      "lists and counts by status, task and owner; purge empties the app",
      withBackend(async (b) => {
        const invs = [newInvocation("t1"), newInvocation("t1"), newInvocation("t2")];
        await b.orchestrator.register(invs);
        await b.broker.claim("a", 1, Date.now());
        assert.equal((await b.state.list({ taskId: "t1" })).length, 2);
        assert.equal((await b.state.list({ statuses: ["PENDING"] })).length, 1);
        assert.equal((await b.state.list({ owner: "a" })).length, 1);
        assert.equal((await b.state.list({ limit: 2 })).length, 2);
        assert.deepEqual(await b.state.counts(), { REGISTERED: 2, PENDING: 1 });
        await b.state.purge();
        assert.equal((await b.state.list({})).length, 0);
        assert.equal(await b.state.get(invs[0]!.id), null);
      }),
    );

    it(
      "tells which of the asked invocations are final, ignoring unknown ids",
      withBackend(async (b) => {
        const base = Date.now() - 1000;
        const invs = [0, 1, 2, 3, 4].map((i) => newInvocation("t", [i], base + i));
        await b.orchestrator.register(invs);
        const at = Date.now();
        assert.equal((await b.broker.claim("a", 3, at, { start: true })).length, 3);
        const running = (i: number) => ({ id: invs[i]!.id, status: "RUNNING" as const, attempt: 1, owner: "a" });
        assert.deepEqual(
          await b.orchestrator.transition([
            planTransition(running(0), "SUCCESS", { by: "a", at, result: "1" }),
            planTransition(running(1), "FAILED", { by: "a", at, error: '{"name":"E","message":"m"}' }),
          ]),
          [true, true],
        );
        // 0 SUCCESS, 1 FAILED, 2 RUNNING, 3 and 4 REGISTERED.
        const ids = [...invs.map((i) => i.id), "no-such-invocation"];
        assert.deepEqual(new Set(await b.state.finalAmong(ids)), new Set([invs[0]!.id, invs[1]!.id]));
        assert.deepEqual(await b.state.finalAmong([invs[2]!.id, invs[3]!.id, "no-such-invocation"]), []);
        assert.deepEqual(await b.state.finalAmong([invs[1]!.id]), [invs[1]!.id]);
        assert.deepEqual(await b.state.finalAmong([]), []);
      }),
    );

    it(
      "wakes subscribers after new work arrives",
      withBackend(async (b) => {
        await assertWakes(b, () => b.orchestrator.register([newInvocation("t")]));
      }),
    );

    it(
      "wakes subscribers after an outcome is recorded",
      withBackend(async (b) => {
        await b.orchestrator.registerRunner(remoteRunner("r1"), Date.now());
        await b.orchestrator.register([newInvocation("t")]);
        const [claimed] = await b.broker.claim("r1", 1, Date.now(), { start: true });
        // Let any wake-up of the registration pass first.
        await new Promise((r) => setTimeout(r, 200));
        await assertWakes(b, async () => {
          const done = planTransition({ id: claimed!.id, status: "RUNNING", attempt: claimed!.attempt, owner: "r1" }, "SUCCESS", {
            by: "r1",
            at: Date.now(),
            result: "1",
          });
          assert.deepEqual(await b.orchestrator.transition([done]), [true]);
        });
      }),
    );
  });

  describe(`${fixture.name}: claim under contention`, () => {
    it("hands each invocation to exactly one of two connections claiming at once", async () => {
      const one = await openApp(fixture);
      const two = await openApp(fixture, { env: one.env });
      const other = one.backend.capabilities.sharedAcrossProcesses ? two : one;
      try {
        for (const id of ["a", "b", "c", "d"]) await one.backend.orchestrator.registerRunner(remoteRunner(id), Date.now());
        const invs = Array.from({ length: 300 }, (_, i) => newInvocation("t", [i]));
        await one.backend.orchestrator.register(invs);
        const seen: string[] = [];
        const drain = async (backend: Backend, runner: string) => {
          for (;;) {
            const claimed = await backend.broker.claim(runner, 7, Date.now());
            if (claimed.length === 0) return;
            seen.push(...claimed.map((c) => c.id));
          }
        };
        await Promise.all([drain(one.backend, "a"), drain(other.backend, "b"), drain(one.backend, "c"), drain(other.backend, "d")]);
        assert.equal(seen.length, 300);
        assert.equal(new Set(seen).size, 300, "no invocation claimed twice");
      } finally {
        await one.app.close();
        await two.app.close();
      }
    });
  });
}

/** `act`, then a subscriber of the broker is woken within 5 s. */
async function assertWakes(b: Backend, act: () => Promise<unknown>): Promise<void> {
  let woken = 0;
  const unsubscribe = b.broker.subscribe(() => woken++);
  try {
    await act();
    const deadline = Date.now() + 5000;
    while (woken === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(woken > 0, "a subscriber was woken");
  } finally {
    unsubscribe();
  }
}
