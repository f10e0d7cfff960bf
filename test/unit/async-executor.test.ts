import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Nenc } from "../../src/index.js";
import { deserialize, serialize } from "../../src/core/serializer.js";
import type { ClaimedInvocation } from "../../src/ports/records.js";
import { AsyncExecutor } from "../../src/runtime/async-executor.js";
import type { TaskContext } from "../../src/runtime/context.js";
import type { Outcome } from "../../src/runtime/executor.js";

const app = new Nenc({
  appId: "async-executor-test",
  backend: { kind: "memory" },
  configFile: null,
  env: { NENC_LOG_TO_CONSOLE: "false" },
});
app.task("sum", (a: number, b: number) => a + b);
app.task("later", async (a: number) => a * 2);
app.task("throws", () => {
  throw new RangeError("at once");
});
app.task(
  "eager",
  () =>
    ({
      then(resolve: (value: string) => void): void {
        resolve("first");
        resolve("second");
      },
    }) as unknown as Promise<string>,
);
app.task("whoAmI", async () => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  return app.current()?.invocationId;
});

const executor = new AsyncExecutor(app, 4);

function invocation(taskId: string, args: unknown[] = []): ClaimedInvocation {
  return { id: `inv-${taskId}`, taskId, args: serialize(args), attempt: 1, retries: 0, parentId: null };
}

function context(claimed: ClaimedInvocation): TaskContext {
  return {
    invocationId: claimed.id,
    taskId: claimed.taskId,
    attempt: 1,
    runnerId: "test-runner",
    signal: new AbortController().signal,
    log: () => {},
  };
}

/** Every outcome `done` heard, and whether run() had returned by then. */
async function outcomes(taskId: string, args: unknown[] = []): Promise<{ outcome: Outcome; afterReturn: boolean }[]> {
  const heard: { outcome: Outcome; afterReturn: boolean }[] = [];
  let returned = false;
  const claimed = invocation(taskId, args);
  executor.run(claimed, context(claimed), (outcome) => heard.push({ outcome, afterReturn: returned }));
  returned = true;
  await new Promise((resolve) => setTimeout(resolve, 20));
  return heard;
}

const value = (outcome: Outcome): unknown => {
  assert.ok(outcome.ok, `expected a result, got ${outcome.ok ? "" : String(outcome.error)}`);
  return deserialize(outcome.result);
};

describe("AsyncExecutor: done hears each outcome once, and only after run() returned", () => {
  it("a task that returns a value", async () => {
    const heard = await outcomes("sum", [2, 3]);
    assert.equal(heard.length, 1);
    assert.equal(value(heard[0]!.outcome), 5);
    assert.ok(heard[0]!.afterReturn);
  });

  it("an async task", async () => {
    const heard = await outcomes("later", [21]);
    assert.equal(heard.length, 1);
    assert.equal(value(heard[0]!.outcome), 42);
    assert.ok(heard[0]!.afterReturn);
  });

  it("a task that throws", async () => {
    const heard = await outcomes("throws");
    assert.equal(heard.length, 1);
    const outcome = heard[0]!.outcome;
    assert.ok(!outcome.ok && outcome.error instanceof RangeError && outcome.error.message === "at once");
    assert.ok(heard[0]!.afterReturn);
  });

  it("a thenable that is not a promise and calls back at once, twice: its first value, once", async () => {
    const heard = await outcomes("eager");
    assert.equal(heard.length, 1);
    assert.equal(value(heard[0]!.outcome), "first");
    assert.ok(heard[0]!.afterReturn);
  });

  it("runs the task in its context, which follows it across an await", async () => {
    const heard = await outcomes("whoAmI");
    assert.equal(value(heard[0]!.outcome), "inv-whoAmI");
  });
});
