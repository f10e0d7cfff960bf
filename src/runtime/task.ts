import { callKey, serialize } from "../core/serializer.js";
import type { ErrorClass, RetryPolicy } from "../core/retry.js";
import type { TaskConfig } from "../core/config.js";
import type { NewInvocation } from "../ports/records.js";
import type { Invocation } from "./invocation.js";
import type { Nenc } from "./app.js";
import { newInvocationId } from "../core/ids.js";
import { taskContext } from "./context.js";

/** Options a task may set in code; each can also be set per task in the config file and environment. */
export interface TaskOptions {
  readonly maxRetries?: number;
  /** Error classes, or their names, that are retried. RetryError always is. */
  readonly retryFor?: readonly (ErrorClass | string)[];
  readonly retryBackoffMs?: number;
  readonly retryBackoffMaxMs?: number;
  readonly retryJitter?: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskFunction = (...args: any[]) => unknown;

/** A named function that runs on any worker of its app. */
export class Task<Args extends unknown[] = unknown[], Result = unknown> {
  readonly name: string;
  readonly fn: (...args: Args) => Result | Promise<Result>;
  readonly #app: Nenc;
  readonly #retryClasses: readonly ErrorClass[];
  readonly config: TaskConfig;

  constructor(app: Nenc, name: string, fn: (...args: Args) => Result | Promise<Result>, options: TaskOptions) {
    this.#app = app;
    this.name = name;
    this.fn = fn;
    const { retryFor = [], ...rest } = options;
    this.#retryClasses = retryFor.filter((kind): kind is ErrorClass => typeof kind === "function");
    const retryNames = retryFor.filter((kind): kind is string => typeof kind === "string");
    this.config = app.resolveTaskConfig(name, { ...rest, ...(retryNames.length ? { retryFor: retryNames } : {}) });
  }

  get retryPolicy(): RetryPolicy {
    const c = this.config;
    return {
      maxRetries: c.maxRetries,
      retryFor: [...this.#retryClasses, ...c.retryFor],
      backoffMs: c.retryBackoffMs,
      backoffMaxMs: c.retryBackoffMaxMs,
      jitter: c.retryJitter,
    };
  }

  /** Record an invocation durably and route it; resolves once it is stored. */
  async invoke(...args: Args): Promise<Invocation<Awaited<Result>>> {
    const [invocation] = await this.#app.register([this.#newInvocation(args)]);
    return invocation as Invocation<Awaited<Result>>;
  }

  /**
   * Invoke once per argument list, routed in batches (`parallelBatchSize`, unset: the backend's
   * registerBatchSize), each stored atomically.
   * Up to PARALLEL_BATCHES_IN_FLIGHT batches are sent at once (a batch's round trip, and on a
   * database its commit, would otherwise be waited for one by one). If one fails, the error is
   * thrown once those in flight have settled; batches sent before it may have been stored.
   */
  async parallelize(argsList: Iterable<Args>): Promise<Invocation<Awaited<Result>>[]> {
    const all = [...argsList].map((args) => this.#newInvocation(args));
    const size = this.#app.config.parallelBatchSize ?? (await this.#app.backend()).capabilities.registerBatchSize;
    const batches: NewInvocation[][] = [];
    for (let i = 0; i < all.length; i += size) batches.push(all.slice(i, i + size));
    const stored: Invocation[][] = new Array<Invocation[]>(batches.length);
    let next = 0;
    let failing = false;
    const sender = async () => {
      while (next < batches.length && !failing) {
        const index = next++;
        try {
          stored[index] = await this.#app.register(batches[index]!);
        } catch (error) {
          failing = true;
          throw error;
        }
      }
    };
    const senders = Array.from({ length: Math.min(PARALLEL_BATCHES_IN_FLIGHT, batches.length) }, sender);
    const settled = await Promise.allSettled(senders);
    const failed = settled.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    return stored.flat() as Invocation<Awaited<Result>>[];
  }

  #newInvocation(args: Args): NewInvocation {
    if (!Array.isArray(args)) throw new TypeError(`${this.name}: arguments must be an array`);
    const encoded = args.map((arg, i) => serialize(arg, `argument ${i} of ${this.name}`));
    const argsText = `[${encoded.join(",")}]`;
    const now = this.#app.clock.now();
    return {
      id: newInvocationId(now),
      taskId: this.name,
      callId: `${this.name}:${callKey(args, argsText)}`,
      args: argsText,
      parentId: taskContext.getStore()?.invocationId ?? null,
      createdAt: now,
      readyAt: now,
    };
  }
}

/** Batches of one parallelize() call sent at once. */
const PARALLEL_BATCHES_IN_FLIGHT = 4;
