import { APP_KEYS, readConfigFile, type AppConfig, type Resolved, type TaskConfig } from "../core/config.js";
import type { Nenc } from "../runtime/app.js";
import { help, parseCommand } from "./args.js";
import { describeBackend } from "./describe-backend.js";
import { appFor } from "./load-app.js";

export const configHelp = `nenc config [--app <module>]

Print every resolved config key, its value and where it came from: default, the config file
(nenc.config.json, else "nenc" in package.json, in the working directory), code (the app's
options), or env (NENC_<KEY>). With --app, also each task's own overrides (task options in code,
"tasks.<name>" in the file, NENC_TASK__<NAME>__<KEY>). Without --app, resolves from file and env.`;

export async function configCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("config", argv, { app: { type: "string" } });
  if (values.help) return help(configHelp);
  const app = await appFor(values.app);
  process.stdout.write(renderConfig(app, values.app));
  return 0;
}

export function renderConfig(app: Nenc, modulePath: string | undefined): string {
  const file = readConfigFile(process.cwd());
  const lines = [
    `app ${app.appId}${modulePath ? ` from ${modulePath}` : " (no --app: config file and environment only)"}`,
    `config file: ${file ? file.path : "none"}`,
    `backend: ${describeBackend(app.config)}`,
    "",
    ...table(appRows(app.resolved)),
  ];
  for (const task of app.tasks) {
    const resolved = app.resolveTaskConfigWithSources(task.name);
    const rows = taskRows(task.name, resolved, app.resolved);
    lines.push("", rows.length ? `task ${task.name}: overrides` : `task ${task.name}: no overrides (the app's values apply)`);
    lines.push(...table(rows).map((line) => `  ${line}`));
  }
  return `${lines.join("\n")}\n`;
}

type Row = readonly [key: string, value: string, source: string];

function appRows(resolved: Resolved<AppConfig>): Row[] {
  return (Object.keys(APP_KEYS) as (keyof AppConfig)[]).map((key) => [
    key,
    formatValue(resolved.values[key]),
    formatSource(resolved.sources[key]),
  ]);
}

/** Only the keys a task sets for itself; the rest are the app's, shown above. */
function taskRows(name: string, resolved: Resolved<TaskConfig>, app: Resolved<AppConfig>): Row[] {
  return (Object.keys(resolved.values) as (keyof TaskConfig)[])
    .filter((key) => resolved.sources[key] !== app.sources[key])
    .map((key) => [key, formatValue(resolved.values[key]), formatSource(resolved.sources[key])]);
}

function table(rows: Row[]): string[] {
  if (rows.length === 0) return [];
  const header: Row = ["key", "value", "source"];
  const all = [header, ...rows];
  const width = [0, 1].map((i) => Math.max(...all.map((row) => row[i]?.length ?? 0)));
  return all.map(([key, value, source]) => `${key.padEnd(width[0] ?? 0)}  ${value.padEnd(width[1] ?? 0)}  ${source}`.trimEnd());
}

function formatValue(value: unknown): string {
  if (value === null) return "(unset)";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function formatSource(source: string | undefined): string {
  return source ?? "default";
}
