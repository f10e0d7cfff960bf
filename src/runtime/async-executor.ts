import { UnknownTaskError } from "../core/errors.js";
import { deserialize, serialize } from "../core/serializer.js";
import type { ClaimedInvocation } from "../ports/records.js";
import type { Nenc } from "./app.js";
import { taskContext, type TaskContext } from "./context.js";
import type { Done, Executor, Outcome } from "./executor.js";

/** Runs tasks in this process's event loop, up to `capacity` at once. */
export class AsyncExecutor implements Executor {
  readonly kind = "async";
  readonly capacity: number;
  readonly #app: Nenc;

  constructor(app: Nenc, capacity: number) {
    this.#app = app;
    this.capacity = capacity;
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  /**
   * Not an async function: a worker runs tens of thousands of these a second, and each async
   * function and await is a promise more (each also seen by the context's promise hooks). A task
   * that returns a promise costs one `then` here; one that returns a value or throws, one
   * microtask (so that `done` is never called before run() returns).
   */
  run(invocation: ClaimedInvocation, context: TaskContext, done: Done): void {
    let returned: unknown;
    let pending: boolean;
    try {
      returned = taskContext.run(context, runTask, this.#app, invocation);
      // Inside the try: reading `then` of what a task returned can throw too.
      pending = isPromiseLike(returned);
    } catch (error) {
      queueMicrotask(() => done({ ok: false, error }));
      return;
    }
    if (!pending) {
      queueMicrotask(() => done(succeeded(invocation, returned)));
      return;
    }
    // A plain native promise settles once and never calls back synchronously; any other thenable is
    // adopted by one first (its `then` may throw, call back at once, or call back twice).
    const promise = Object.getPrototypeOf(returned) === Promise.prototype ? (returned as Promise<unknown>) : Promise.resolve(returned);
    promise.then(
      (result) => done(succeeded(invocation, result)),
      (error: unknown) => done({ ok: false, error }),
    );
  }
}

function succeeded(invocation: ClaimedInvocation, result: unknown): Outcome {
  try {
    return { ok: true, result: serialize(result, `result of ${invocation.taskId}`) };
  } catch (error) {
    return { ok: false, error };
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * Look up the task, decode its arguments and call it; shared by every executor. It throws at once
 * for an unknown task or unreadable arguments, and returns what the task returns (a promise, for
 * an async task): the caller awaits it.
 */
export function runTask(app: Nenc, invocation: ClaimedInvocation): unknown {
  const task = app.getTask(invocation.taskId);
  if (!task) throw new UnknownTaskError(invocation.taskId);
  const args = decodeArgs(invocation);
  return task.fn(...args);
}

function decodeArgs(invocation: ClaimedInvocation): unknown[] {
  let args: unknown;
  try {
    args = deserialize(invocation.args);
  } catch (error) {
    throw new TypeError(`the stored arguments of invocation ${invocation.id} cannot be read: ${(error as Error).message}`);
  }
  if (!Array.isArray(args)) throw new TypeError(`the stored arguments of invocation ${invocation.id} are not a list`);
  return args;
}
