import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deserialize, serialize, stableHash } from "../../src/core/serializer.js";
import { SerializationError } from "../../src/core/errors.js";

describe("serializer", () => {
  const roundTrip = <T>(value: T): T => deserialize<T>(serialize(value));

  it("keeps plain JSON as plain JSON", () => {
    assert.equal(serialize({ a: [1, "x", null, true] }), '{"a":[1,"x",null,true]}');
  });

  it("carries the types JSON cannot", () => {
    const value = {
      d: new Date(1234),
      m: new Map<unknown, unknown>([[1, { s: new Set(["a"]) }]]),
      b: 2n ** 70n,
      u: undefined,
      inf: -Infinity,
      list: [undefined, 1],
    };
    const back = roundTrip(value);
    assert.deepEqual(back, value);
  });

  it("carries errors with their name, message, stack and own fields", () => {
    const error = Object.assign(new TypeError("nope"), { code: "E_NOPE" });
    const back = roundTrip<TypeError & { code: string }>(error);
    assert.ok(back instanceof Error);
    assert.equal(back.name, "TypeError");
    assert.equal(back.message, "nope");
    assert.equal(back.code, "E_NOPE");
    assert.equal(back.stack, error.stack);
  });

  it("does not confuse a user's own $nenc key with its tags", () => {
    const value = { $nenc: "Date", v: "2020-01-01" };
    assert.deepEqual(roundTrip(value), value);
  });

  it("refuses functions, symbols, class instances and cycles, naming where", () => {
    assert.throws(() => serialize({ a: { f: () => 1 } }, "argument 0 of t"), /argument 0 of t\.a\.f is a function/);
    assert.throws(() => serialize([Symbol("s")], "x"), /x\[0\] is a symbol/);
    class Point {
      constructor(readonly x: number) {}
    }
    assert.throws(() => serialize(new Point(1), "p"), /p is an instance of Point/);
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    assert.throws(() => serialize(cyclic, "c"), SerializationError);
  });

  it("hashes equal arguments equally whatever their key order", () => {
    assert.equal(stableHash([{ a: 1, b: 2 }]), stableHash([{ b: 2, a: 1 }]));
    assert.notEqual(stableHash([1]), stableHash([2]));
    assert.notEqual(stableHash([new Date(0)]), stableHash(["1970-01-01T00:00:00.000Z"]));
  });
});
