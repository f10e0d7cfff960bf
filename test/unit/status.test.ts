import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLAIMABLE_STATUSES, STATUSES, STATUS_TABLE, canTransition, sourcesOf } from "../../src/core/status.js";
import { afterTransition, planRecovery, planTransition } from "../../src/core/transition.js";
import { InvalidTransitionError, OwnershipError } from "../../src/core/errors.js";

describe("status table", () => {
  it("has the reference transitions", () => {
    assert.deepEqual(STATUS_TABLE.REGISTERED.to, ["PENDING", "CONCURRENCY_CONTROLLED", "CONCURRENCY_CONTROLLED_FINAL"]);
    assert.deepEqual(STATUS_TABLE.RUNNING.to, ["PAUSED", "KILLED", "RETRY", "SUCCESS", "FAILED", "RUNNING_RECOVERY"]);
    assert.deepEqual(STATUS_TABLE.RETRY.to, ["PENDING"]);
    assert.deepEqual(sourcesOf("PENDING"), ["REGISTERED", "RETRY", "REROUTED"]);
    assert.ok(!canTransition("SUCCESS", "RUNNING"));
  });

  it("gives final statuses no way out and every other status a way forward", () => {
    for (const status of STATUSES) {
      const rule = STATUS_TABLE[status];
      if (rule.final) assert.equal(rule.to.length, 0, status);
      else assert.ok(rule.to.length > 0, status);
    }
  });

  it("gives every non-final status that is not claimable a recovery path ending claimable", () => {
    for (const status of STATUSES) {
      const rule = STATUS_TABLE[status];
      if (rule.final || rule.claimable) continue;
      assert.ok(rule.recoverTo, `${status} has no recoverTo: it could be stranded`);
      const steps = planRecovery({ id: "x", status, attempt: 3, owner: "dead" }, "recoverer", 0);
      const last = steps.at(-1);
      assert.ok(last && CLAIMABLE_STATUSES.includes(last.to), `${status} recovers to ${last?.to}`);
      for (const step of steps) assert.ok(canTransition(step.expect.status, step.to));
    }
  });

  it("only claims (PENDING) bump the attempt; owned statuses keep the owner", () => {
    const claim = planTransition({ id: "x", status: "REGISTERED", attempt: 0, owner: null }, "PENDING", { by: "r1", at: 1 });
    assert.equal(claim.attempt, 1);
    assert.equal(claim.owner, "r1");
    const running = planTransition(afterTransition(claim), "RUNNING", { by: "r1", at: 2 });
    assert.deepEqual(running.expect, { status: "PENDING", attempt: 1, owner: "r1" });
    assert.equal(running.attempt, 1);
    assert.equal(running.owner, "r1");
    const done = planTransition(afterTransition(running), "SUCCESS", { by: "r1", at: 3, result: "1" });
    assert.equal(done.owner, null);
    assert.equal(done.readyAt, null);
    const rerouted = planTransition({ id: "x", status: "KILLED", attempt: 1, owner: null }, "REROUTED", { by: "r1", at: 4 });
    assert.equal(rerouted.readyAt, 4, "claimable statuses are queued at once by default");
  });

  it("refuses what the table forbids and what the owner alone may do", () => {
    assert.throws(
      () => planTransition({ id: "x", status: "SUCCESS", attempt: 1, owner: null }, "RUNNING", { by: "r", at: 0 }),
      InvalidTransitionError,
    );
    assert.throws(
      () => planTransition({ id: "x", status: "RUNNING", attempt: 1, owner: "a" }, "SUCCESS", { by: null, at: 0 }),
      OwnershipError,
    );
    // Recovery overrides ownership.
    const taken = planTransition({ id: "x", status: "RUNNING", attempt: 1, owner: "a" }, "RUNNING_RECOVERY", { by: "b", at: 0 });
    assert.deepEqual(taken.expect, { status: "RUNNING", attempt: 1 });
    assert.equal(taken.owner, null);
  });
});
