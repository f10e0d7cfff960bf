import { Worker as Thread } from "node:worker_threads";
import { NencError } from "../core/errors.js";
import { errorRecord, serialize } from "../core/serializer.js";
import type { ClaimedInvocation, LogLevel } from "../ports/records.js";
import { loadApp } from "../cli/load-app.js";
import type { Nenc } from "./app.js";
import { runTask } from "./async-executor.js";
import { taskContext, type TaskContext } from "./context.js";

/**
 * A process-runner child: it imports the app module, says "ready", then runs one invocation at a
 * time on the parent's request, sending back its log lines and its serialized outcome. It never
 * opens a worker, a heartbeat or recovery: the parent is the runner and does all the storing.
 * It finds the app as `nenc worker --app` does (the same loadApp).
 */

/** Parent to child. */
export interface RunMessage {
  readonly type: "run";
  readonly invocation: ClaimedInvocation;
  readonly attempt: number;
  readonly runnerId: string;
}

/** Child to parent. */
export type ChildMessage =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "log"; readonly id: string; readonly level: LogLevel; readonly message: string }
  | { readonly type: "done"; readonly id: string; readonly ok: true; readonly result: string }
  | { readonly type: "done"; readonly id: string; readonly ok: false; readonly error: string; readonly className: string | null };

/** The parent kills a child to abort its task, so a child's own signal never fires. */
const neverAborted = new AbortController().signal;

export async function runChild(appModule: string | undefined): Promise<void> {
  if (!process.send) throw new NencError("process-child runs only as a child of the process runner (it needs an IPC channel)");
  exitWithParent();
  let app: Nenc;
  try {
    if (!appModule) throw new NencError("no app module was given to the child process");
    app = (await loadApp(appModule)).app;
  } catch (error) {
    process.send({ type: "failed", message: (error as Error).message ?? String(error) } satisfies ChildMessage, () => process.exit(1));
    return;
  }
  process.title = `nenc-child ${app.appId}`;
  process.on("message", (message: RunMessage) => {
    if (message.type === "run") void runOne(app, message);
  });
  send({ type: "ready" });
}

async function runOne(app: Nenc, message: RunMessage): Promise<void> {
  const { invocation, attempt, runnerId } = message;
  const id = invocation.id;
  const context: TaskContext = {
    invocationId: id,
    taskId: invocation.taskId,
    attempt,
    runnerId,
    signal: neverAborted,
    log: (level, text) => send({ type: "log", id, level, message: text }),
  };
  let done: ChildMessage;
  try {
    const result = await taskContext.run(context, () => runTask(app, invocation));
    done = { type: "done", id, ok: true, result: serialize(result, `result of ${invocation.taskId}`) };
  } catch (error) {
    done = { type: "done", id, ok: false, ...encodeError(error, invocation.taskId) };
  }
  send(done);
}

/** The error as the serializer carries it, with its class name so the parent can restore the class. */
function encodeError(error: unknown, taskId: string): { error: string; className: string | null } {
  const className = error instanceof Error ? error.constructor.name : null;
  try {
    return { error: serialize(error, `error of ${taskId}`), className };
  } catch {
    // A field the serializer cannot carry: keep name, message and stack.
    const record = errorRecord(error);
    const plain = new Error(record.message);
    plain.name = record.name;
    if (record.stack) plain.stack = record.stack;
    return { error: serialize(plain, `error of ${taskId}`), className };
  }
}

function send(message: ChildMessage): void {
  if (process.connected) process.send?.(message);
}

/**
 * No orphans: exit when the channel to the parent closes, and, since a task may hold this event
 * loop for minutes, a thread also checks that the parent is still ours and kills this process if not.
 */
function exitWithParent(): void {
  process.on("disconnect", () => process.exit(0));
  const watcher = new Thread(
    `const { workerData } = require("node:worker_threads");
     setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(workerData.pid, "SIGKILL"); }, 250);`,
    { eval: true, workerData: { ppid: process.ppid, pid: process.pid } },
  );
  watcher.unref();
}
