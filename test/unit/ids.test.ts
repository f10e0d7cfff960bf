import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newInvocationId } from "../../src/core/ids.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("invocation ids", () => {
  it("are UUIDs of version 7, all different, across many refills of the random pool", () => {
    const ids = Array.from({ length: 100_000 }, () => newInvocationId());
    for (const id of ids) assert.match(id, UUID_V7);
    assert.equal(new Set(ids).size, ids.length);
  });

  it("start with the time in milliseconds, so ids made later sort after", () => {
    const at = Date.UTC(2026, 10, 28, 12, 0, 0, 123);
    const id = newInvocationId(at);
    assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at);
    assert.ok(newInvocationId(at) < newInvocationId(at + 1));
    assert.ok(newInvocationId(0) < newInvocationId(at));
  });
});
