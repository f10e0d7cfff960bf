import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CALL_KEY_INLINE_MAX, callKey, deserialize, serialize } from "../../src/core/serializer.js";
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
    assert.equal(serialize(undefined), '{"$nenc":"undefined"}', "alone, as inside a value");
    assert.equal(deserialize(serialize(undefined)), undefined);
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

  describe("call keys", () => {
    const key = (args: unknown[]) => callKey(args, `[${args.map((arg) => serialize(arg)).join(",")}]`);

    it("are equal for equal arguments whatever their key order, and differ otherwise", () => {
      assert.equal(key([{ a: 1, b: { c: [1, { d: 1, e: 2 }], f: 2 } }]), key([{ b: { f: 2, c: [1, { e: 2, d: 1 }] }, a: 1 }]));
      assert.notEqual(key([1]), key([2]));
      assert.notEqual(key([1, 2]), key([[1, 2]]));
      assert.notEqual(key([new Date(0)]), key(["1970-01-01T00:00:00.000Z"]));
      assert.notEqual(key([undefined]), key([null]));
      const long = "x".repeat(CALL_KEY_INLINE_MAX);
      assert.equal(key([{ a: long, b: 1 }]), key([{ b: 1, a: long }]));
      assert.notEqual(key([long + "1"]), key([long + "2"]));
    });

    it("hold short arguments as their canonical JSON, and a digest of longer ones", () => {
      assert.equal(key([1, "two", [3]]), '[1,"two",[3]]');
      assert.equal(key([{ b: 2, a: 1 }]), '[{"a":1,"b":2}]');
      assert.equal(key([new Date(0)]), '[{"$nenc":"Date","v":"1970-01-01T00:00:00.000Z"}]');
      const digested = key(["x".repeat(CALL_KEY_INLINE_MAX)]);
      assert.match(digested, /^#[\w-]{22}$/);
      assert.equal(key([]), "[]");
    });
  });
});
