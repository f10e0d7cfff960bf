import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Nenc } from "../runtime/app.js";
import { CliError } from "./cli-error.js";

export interface LoadedApp {
  readonly app: Nenc;
  /** Absolute path of the module, so child processes (the process runner) can load it too. */
  readonly modulePath: string;
  /** Which export held the app. */
  readonly exportName: string;
}

/**
 * Import a user's task module (.ts or .js, relative to the working directory) and find its app:
 * the export named `app`, else the default export, else the only exported Nenc. Every failure
 * is a CliError with exit code 2 naming the file.
 */
export async function loadApp(path: string, cwd = process.cwd()): Promise<LoadedApp> {
  const modulePath = resolve(cwd, path);
  if (!existsSync(modulePath)) throw new CliError(`cannot load app module ${path}: no such file (${modulePath})`, 2);
  if (statSync(modulePath).isDirectory()) throw new CliError(`cannot load app module ${path}: it is a directory, give the module file`, 2);
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`cannot load app module ${path}: importing it threw ${describeError(error)}`, 2, { cause: error });
  }
  const [exportName, app] = findApp(path, module);
  return { app, modulePath, exportName };
}

export function findApp(path: string, module: Record<string, unknown>): [string, Nenc] {
  const app = module["app"];
  if (isNenc(app)) return ["app", app];
  const fallback = module["default"];
  if (isNenc(fallback)) return ["default", fallback];
  const found = Object.entries(module).filter(([, value]) => isNenc(value)) as [string, Nenc][];
  const [only] = found;
  if (found.length === 1 && only) return only;
  if (found.length > 1) {
    throw new CliError(
      `app module ${path} exports ${found.length} Nenc apps (${found.map(([name]) => name).join(", ")}); ` +
        `export the one to run as "app" or as the default export`,
      2,
    );
  }
  const names = Object.keys(module);
  throw new CliError(
    `app module ${path} exports no Nenc app (exports: ${names.length ? names.join(", ") : "none"}); ` +
      `add: export const app = new Nenc({ appId: "..." })`,
    2,
  );
}

/**
 * An app made by this copy of nenc, or by another copy of it (a module that imports "nenc" from
 * its own node_modules while the CLI runs from elsewhere): then instanceof fails but the shape holds.
 */
function isNenc(value: unknown): value is Nenc {
  if (value instanceof Nenc) return true;
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<Record<keyof Nenc, unknown>>;
  return (
    value.constructor?.name === "Nenc" &&
    typeof candidate.startWorker === "function" &&
    typeof candidate.task === "function" &&
    typeof candidate.resolved === "object"
  );
}

/** The error's first line; when that line only announces what follows ("...failed:"), the next too. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const lines = error.message
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  const [first = "", second] = lines;
  return `${error.name}: ${first.endsWith(":") && second ? `${first} ${second}` : first}`;
}

/** The app of --app, or one resolved from the config file and environment alone. */
export async function appFor(path: string | undefined): Promise<Nenc> {
  return path === undefined ? new Nenc() : (await loadApp(path)).app;
}
