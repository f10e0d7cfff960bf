import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { inspect } from "node:util";
import type { Clock } from "../../src/core/clock.js";
import { Nenc, type NencOptions } from "../../src/runtime/app.js";
import type { Backend } from "../../src/ports/backend.js";
import type { NewInvocation, RunnerInfo } from "../../src/ports/records.js";

/** How a backend joins the conformance suite: env vars pointing a fresh, isolated app at it. */
export interface BackendFixture {
  readonly name: string;
  /** Each call: a new app nobody else uses (new file, new appId...). Child processes get the same vars. */
  env(): Record<string, string>;
  /** Remove what the suite's apps left behind (the env of each app it opened), once it is done. */
  cleanUp?(envs: readonly Record<string, string>[]): Promise<void>;
}

/** Purge each app's data: the clean-up of a backend on a shared server. */
export async function purgeApps(envs: readonly Record<string, string>[]): Promise<void> {
  for (const env of envs) {
    const app = new Nenc({ env: { NENC_LOG_TO_CONSOLE: "false", ...env }, configFile: null });
    try {
      await (await app.backend()).state.purge();
    } finally {
      await app.close();
    }
  }
}

export interface TestApp {
  readonly app: Nenc;
  readonly backend: Backend;
  readonly env: Record<string, string>;
}

/** Open an app on the fixture's backend; pass the env of another TestApp to share its data. */
export async function openApp(
  fixture: BackendFixture,
  options: { env?: Record<string, string>; clock?: Clock; extra?: Partial<NencOptions> } = {},
): Promise<TestApp> {
  const env = options.env ?? fixture.env();
  const app = new Nenc({
    env: { NENC_LOG_TO_CONSOLE: "false", ...env },
    configFile: null,
    ...(options.clock ? { clock: options.clock } : {}),
    ...options.extra,
  });
  return { app, backend: await app.backend(), env };
}

export function newInvocation(taskId: string, args: unknown[] = [], at = Date.now()): NewInvocation {
  return { id: randomUUID(), taskId, callId: `${taskId}:x`, args: JSON.stringify(args), parentId: null, createdAt: at, readyAt: at };
}

/** A runner record on a host that is not this one, so only its heartbeat can tell whether it lives. */
export function remoteRunner(id = `remote-${randomUUID().slice(0, 8)}`, at = Date.now()): RunnerInfo {
  return { id, kind: "async", hostId: "another-host", hostname: "elsewhere", pid: 4242, pidStart: null, startedAt: at };
}

export async function eventually<T>(probe: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${last instanceof Error ? String(last) : inspect(last)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port nothing listens on right now, for a private server a test starts. */
export function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
