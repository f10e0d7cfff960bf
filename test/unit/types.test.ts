import { it } from "node:test";
import { expectTypeOf } from "expect-type";
import { Nenc, type Invocation, type Status } from "../../src/index.js";

// Checked by `tsc --noEmit` (part of `npm test`): a wrong argument must not compile.
it("types flow from the task function to invoke and result", () => {
  const app = new Nenc({ backend: "memory", configFile: null });
  const slowTask = app.task("slowTask", async (taskNum: number): Promise<string> => `task_${taskNum}_completed`);
  const pair = app.task("pair", (a: string, b: { n: bigint }) => [a, b.n] as const);
  // Methods are checked by their types (`typeof`), not taken off their objects.
  expectTypeOf<typeof slowTask.invoke>().parameters.toEqualTypeOf<[number]>();
  expectTypeOf<typeof slowTask.invoke>().returns.resolves.toEqualTypeOf<Invocation<string>>();
  expectTypeOf<ReturnType<Invocation<string>["result"]>>().toEqualTypeOf<Promise<string>>();
  expectTypeOf<ReturnType<Invocation<string>["status"]>>().toEqualTypeOf<Promise<Status>>();
  expectTypeOf<typeof pair.parallelize>().parameters.toEqualTypeOf<[Iterable<[string, { n: bigint }]>]>();
  expectTypeOf<ReturnType<typeof app.invocation<number>>["result"]>().returns.toEqualTypeOf<Promise<number>>();
  const wrong = async () => {
    // @ts-expect-error a string is not a number
    await slowTask.invoke("x");
    // @ts-expect-error missing argument
    await slowTask.invoke();
    // @ts-expect-error too many arguments
    await pair.invoke("a", { n: 1n }, 3);
  };
  void wrong;
});
