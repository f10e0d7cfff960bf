import { InvocationNotFoundError, type ErrorRecord } from "../core/errors.js";
import { deserialize } from "../core/serializer.js";
import type { Nenc } from "../runtime/app.js";
import type { HistoryView, InvocationRecord, LogLine } from "../ports/records.js";
import { help, parseCommand } from "./args.js";
import { CliError, UsageError } from "./cli-error.js";
import { describeBackend } from "./describe-backend.js";
import { appFor } from "./load-app.js";

export const statusHelp = `nenc status <invocation-id> [--app <module>]

Show one invocation: its status, its history (each status with time, attempt, runner, host and
pid), then its result or its error, and the log lines stored for it. Exits 1 if there is no such
invocation in the app.`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("status", argv, { app: { type: "string" } }, 1);
  if (values.help) return help(statusHelp);
  const [id] = positionals;
  if (id === undefined) throw new UsageError("nenc status: give an invocation id (see nenc status --help)");
  const app = await appFor(values.app);
  try {
    process.stdout.write(await renderStatus(app, id));
  } finally {
    await app.close();
  }
  return 0;
}

export async function renderStatus(app: Nenc, id: string): Promise<string> {
  const invocation = app.invocation(id);
  let record: InvocationRecord;
  try {
    record = await invocation.record();
  } catch (error) {
    if (error instanceof InvocationNotFoundError) {
      throw new CliError(`no invocation ${id} in app ${app.appId} (backend ${describeBackend(app.config)})`);
    }
    throw error;
  }
  const [history, logs] = await Promise.all([invocation.history(), invocation.logs()]);
  return [
    `invocation ${record.id}`,
    `  task     ${record.taskId}`,
    `  args     ${record.args}`,
    `  status   ${record.status}`,
    `  attempt  ${record.attempt}${record.owner ? ` (owner ${record.owner})` : ""}`,
    `  retries  ${record.retries}`,
    ...(record.parentId ? [`  parent   ${record.parentId}`] : []),
    "",
    "history",
    ...historyLines(history),
    "",
    ...outcomeLines(record),
    "",
    `logs (${logs.length})`,
    ...logs.map(logLine),
    "",
  ].join("\n");
}

function historyLines(history: HistoryView[]): string[] {
  const rows = history.map((entry) => [
    entry.status,
    new Date(entry.at).toISOString(),
    `attempt ${entry.attempt}`,
    entry.runnerId ?? "(client)",
    entry.hostname ?? "-",
    entry.pid === null ? "-" : `pid ${entry.pid}`,
  ]);
  const widths = rows.reduce<number[]>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), []);
  return rows.map(
    (row) =>
      `  ${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()}`,
  );
}

function outcomeLines(record: InvocationRecord): string[] {
  if (record.result !== null && record.status === "SUCCESS") return ["result", `  ${record.result}`];
  if (record.error !== null) {
    const failure = readError(record.error);
    const heading = record.status === "FAILED" ? "error" : "last error (it will be retried)";
    return [heading, `  ${failure.name}: ${failure.message}`, ...(failure.stack ? indentStack(failure.stack) : [])];
  }
  return [`no result yet (${record.status})`];
}

function readError(text: string): ErrorRecord {
  try {
    return deserialize<ErrorRecord>(text);
  } catch {
    return { name: "Error", message: text };
  }
}

/** The stack's frames only; the first line repeats the message. */
function indentStack(stack: string): string[] {
  return stack
    .split("\n")
    .filter((line) => line.trimStart().startsWith("at "))
    .map((line) => `    ${line.trim()}`);
}

function logLine(line: LogLine): string {
  return `  ${new Date(line.at).toISOString()} ${line.level.toUpperCase().padEnd(5)} attempt ${line.attempt} ${line.message}`;
}
