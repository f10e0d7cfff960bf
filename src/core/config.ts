import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "./errors.js";

/**
 * Configuration resolution, with no I/O beyond reading the config file. Each key has one spec
 * (default, parser, doc); a value is taken from, lowest first:
 *   defaults < config file (nenc.config.json, else package.json "nenc") < code options < environment
 * The environment name of a key is NENC_ + the key in SCREAMING_SNAKE_CASE (runnerDeadAfterMs ->
 * NENC_RUNNER_DEAD_AFTER_MS). Task options resolve the same way, with the task's own options in
 * code, `tasks.<name>` in the file and NENC_TASK__<TASK_NAME>__<KEY> in the environment on top.
 */

type Parser<T> = (raw: unknown) => T;

interface KeySpec<T> {
  readonly default: T;
  readonly parse: Parser<T>;
  readonly doc: string;
}

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
  (raw) => {
    const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
    if (typeof n !== "number" || !Number.isInteger(n)) throw new Error(`expected a whole number, got ${show(raw)}`);
    if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}, got ${n}`);
    return n;
  };
const fraction: Parser<number> = (raw) => {
  const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof n !== "number" || !(n >= 0 && n <= 1)) throw new Error(`expected a number from 0 to 1, got ${show(raw)}`);
  return n;
};
const oneOf =
  <const T extends string>(...values: T[]): Parser<T> =>
  (raw) => {
    if (typeof raw !== "string" || !(values as string[]).includes(raw)) {
      throw new Error(`expected one of ${values.join(", ")}, got ${show(raw)}`);
    }
    return raw as T;
  };
const text: Parser<string> = (raw) => {
  if (typeof raw !== "string" || raw === "") throw new Error(`expected a non-empty string, got ${show(raw)}`);
  return raw;
};
const optional =
  <T>(parse: Parser<T>): Parser<T | null> =>
  (raw) =>
    raw === null || raw === "" ? null : parse(raw);
const optionalText = optional(text);
const bool: Parser<boolean> = (raw) => {
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new Error(`expected true or false, got ${show(raw)}`);
};
const names: Parser<string[]> = (raw) => {
  const list =
    typeof raw === "string"
      ? raw
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : raw;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
    throw new Error(`expected a list of error class names, got ${show(raw)}`);
  }
  return list;
};

function show(raw: unknown): string {
  return typeof raw === "string" ? JSON.stringify(raw) : String(JSON.stringify(raw) ?? raw);
}

const spec = <T>(value: T, parse: Parser<T>, doc: string): KeySpec<T> => ({ default: value, parse, doc });

export const TASK_KEYS = {
  maxRetries: spec(0, int(0, 1_000_000), "further attempts after a failure"),
  retryFor: spec<string[]>([], names, "error class names that are retried (RetryError always is)"),
  retryBackoffMs: spec(1000, int(0), "delay before the first retry; doubles each retry"),
  retryBackoffMaxMs: spec(60_000, int(0), "longest delay between retries"),
  retryJitter: spec(0.5, fraction, "share of each retry delay drawn at random"),
};

export const APP_KEYS = {
  appId: spec("nenc", text, "name of the app; apps on one backend never see each other's data"),
  backend: spec("sqlite", oneOf("sqlite", "memory", "redis", "postgres"), "where invocations live"),
  sqlitePath: spec<string | null>(null, optionalText, "SQLite file (default .nenc/<appId>.sqlite in the working directory)"),
  redisUrl: spec("redis://127.0.0.1:6379", text, "Redis server for backend redis"),
  postgresUrl: spec("postgres://127.0.0.1:5432/postgres", text, "PostgreSQL server for backend postgres"),
  runner: spec("async", oneOf("async", "process"), "how a worker runs tasks: in its event loop, or in child processes"),
  concurrency: spec(0, int(0, 100_000), "tasks one worker runs at once (0: 50 for async, one per core for process)"),
  heartbeatIntervalMs: spec(1000, int(50), "how often a runner records that it is alive"),
  runnerDeadAfterMs: spec(7000, int(200), "a runner silent this long is dead and its work is recovered"),
  recoveryIntervalMs: spec(750, int(20), "how often the recoverer looks for dead runners"),
  recoveryLeaseMs: spec(3000, int(100), "how long the recoverer's lease lasts without renewal"),
  pollIntervalMs: spec(1000, int(5), "longest an idle runner waits before looking for work unprompted"),
  parallelBatchSize: spec<number | null>(
    null,
    optional(int(1, 100_000)),
    "invocations routed per batch by parallelize (each batch stored atomically, 4 sent at once); unset: the backend's (100 on Redis, 1,000 elsewhere)",
  ),
  logLevel: spec("info", oneOf("debug", "info", "warn", "error"), "lowest level app.logger records"),
  logToConsole: spec(true, bool, "also print app.logger lines to stderr"),
  ...TASK_KEYS,
};

export type AppKey = keyof typeof APP_KEYS;
export type TaskKey = keyof typeof TASK_KEYS;
type ValueOf<K extends Record<string, KeySpec<unknown>>> = { [P in keyof K]: K[P]["default"] };
export type AppConfig = ValueOf<typeof APP_KEYS>;
export type TaskConfig = ValueOf<typeof TASK_KEYS>;

export type ConfigSource = "default" | "file" | "code" | "env";
export interface Resolved<T> {
  readonly values: T;
  readonly sources: Record<keyof T, string>;
}

export interface ConfigInputs {
  readonly code?: Record<string, unknown>;
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
  /** Already-read file contents, or undefined to look in cwd. */
  readonly file?: FileConfig | null;
}

export interface FileConfig {
  readonly path: string;
  readonly values: Record<string, unknown>;
}

export function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toUpperCase();
}

/** Reads nenc.config.json, else the "nenc" key of package.json, in `cwd`; null when neither has one. */
export function readConfigFile(cwd: string): FileConfig | null {
  const own = join(cwd, "nenc.config.json");
  if (existsSync(own)) return { path: own, values: parseJsonObject(own, readFileSync(own, "utf8")) };
  const pkg = join(cwd, "package.json");
  if (existsSync(pkg)) {
    const values = parseJsonObject(pkg, readFileSync(pkg, "utf8"))["nenc"];
    if (values === undefined) return null;
    if (!isRecord(values)) throw new ConfigError("nenc", pkg, "expected an object");
    return { path: `${pkg} "nenc"`, values };
  }
  return null;
}

function parseJsonObject(path: string, body: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new ConfigError("(file)", path, `not valid JSON: ${(error as Error).message}`);
  }
  if (!isRecord(parsed)) throw new ConfigError("(file)", path, "expected a JSON object");
  return parsed;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function resolveAppConfig(inputs: ConfigInputs): Resolved<AppConfig> {
  const file = inputs.file === undefined ? readConfigFile(inputs.cwd ?? process.cwd()) : inputs.file;
  const { tasks: _tasks, ...fileValues } = file?.values ?? {};
  const layers: Layer[] = [
    { source: file?.path ?? "file", values: fileValues },
    { source: "code", values: inputs.code ?? {} },
    ...envLayers(APP_KEYS, inputs.env ?? {}, "NENC_"),
  ];
  return resolve(APP_KEYS, layers) as Resolved<AppConfig>;
}

/**
 * A task's options: the app's resolved values for task keys, then the task's options in code,
 * then `tasks.<name>` in the file, then NENC_TASK__<NAME>__<KEY>.
 */
export function resolveTaskConfig(
  taskName: string,
  app: Resolved<AppConfig>,
  code: Record<string, unknown>,
  inputs: ConfigInputs,
): Resolved<TaskConfig> {
  const file = inputs.file === undefined ? readConfigFile(inputs.cwd ?? process.cwd()) : inputs.file;
  const fileTasks = isRecord(file?.values["tasks"]) ? file.values["tasks"] : {};
  const fromFile = fileTasks[taskName];
  if (fromFile !== undefined && !isRecord(fromFile)) {
    throw new ConfigError(`tasks.${taskName}`, file?.path ?? "file", "expected an object of task options");
  }
  const inherited: Record<string, unknown> = {};
  const inheritedSources: Record<string, string> = {};
  for (const key of Object.keys(TASK_KEYS) as TaskKey[]) {
    inherited[key] = app.values[key];
    inheritedSources[key] = app.sources[key];
  }
  const layers: Layer[] = [
    { source: "code (task options)", values: code },
    { source: `${file?.path ?? "file"} tasks.${taskName}`, values: fromFile ?? {} },
    ...envLayers(TASK_KEYS, inputs.env ?? {}, `NENC_TASK__${screamingSnake(taskName)}__`),
  ];
  return resolve(TASK_KEYS, layers, { values: inherited, sources: inheritedSources }) as Resolved<TaskConfig>;
}

interface Layer {
  readonly source: string;
  readonly values: Record<string, unknown>;
}

/** One layer per variable that is set, so a bad value names the variable it came from. */
function envLayers(keys: Record<string, unknown>, env: Record<string, string | undefined>, prefix: string): Layer[] {
  return Object.keys(keys).flatMap((key) => {
    const name = prefix + screamingSnake(key);
    const value = env[name];
    return value === undefined ? [] : [{ source: `env ${name}`, values: { [key]: value } }];
  });
}

function resolve(
  keys: Record<string, KeySpec<unknown>>,
  layers: Layer[],
  base?: { values: Record<string, unknown>; sources: Record<string, string> },
): Resolved<Record<string, unknown>> {
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const [key, keySpec] of Object.entries(keys)) {
    values[key] = base ? base.values[key] : keySpec.default;
    sources[key] = base ? (base.sources[key] ?? "default") : "default";
  }
  for (const layer of layers) {
    for (const [key, raw] of Object.entries(layer.values)) {
      const keySpec = keys[key];
      if (!keySpec) {
        throw new ConfigError(key, layer.source, `unknown key; known keys are ${Object.keys(keys).join(", ")}`);
      }
      if (raw === undefined) continue;
      try {
        values[key] = keySpec.parse(raw);
      } catch (error) {
        throw new ConfigError(key, layer.source, (error as Error).message);
      }
      sources[key] = layer.source;
    }
  }
  return { values, sources };
}

export function describeKeys(): { key: string; default: unknown; doc: string; env: string }[] {
  return Object.entries(APP_KEYS).map(([key, keySpec]) => ({
    key,
    default: keySpec.default,
    doc: keySpec.doc,
    env: `NENC_${screamingSnake(key)}`,
  }));
}
