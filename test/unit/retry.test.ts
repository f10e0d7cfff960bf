import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRetriable, retryDelayMs, type RetryPolicy } from "../../src/core/retry.js";
import { RetryError } from "../../src/core/errors.js";

class Transient extends Error {}
const policy: RetryPolicy = { maxRetries: 3, retryFor: [Transient, "TimeoutError"], backoffMs: 100, backoffMaxMs: 1000, jitter: 0.5 };

describe("retry policy", () => {
  it("retries RetryError, the listed classes and names, within maxRetries", () => {
    assert.ok(isRetriable(policy, new RetryError("x"), 0));
    assert.ok(isRetriable(policy, new Transient("x"), 2));
    assert.ok(isRetriable(policy, Object.assign(new Error("t"), { name: "TimeoutError" }), 0));
    assert.ok(!isRetriable(policy, new TypeError("x"), 0));
    assert.ok(!isRetriable(policy, new RetryError("x"), 3));
    assert.ok(!isRetriable({ ...policy, maxRetries: 0 }, new RetryError("x"), 0));
  });

  it("backs off exponentially, capped, with jitter in the stated share", () => {
    const lowest = () => 0;
    const highest = () => 1;
    assert.equal(retryDelayMs(policy, 0, lowest), 50);
    assert.equal(retryDelayMs(policy, 0, highest), 100);
    assert.equal(retryDelayMs(policy, 2, highest), 400);
    assert.equal(retryDelayMs(policy, 10, highest), 1000);
    assert.equal(retryDelayMs({ ...policy, jitter: 0 }, 1, Math.random), 200);
  });
});
