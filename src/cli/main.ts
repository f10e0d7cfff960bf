import { ConfigError, NencError } from "../core/errors.js";
import { CliError, UsageError } from "./cli-error.js";
import { configCommand, configHelp } from "./config.js";
import { demoCommand, demoHelp } from "./demo.js";
import { purgeCommand, purgeHelp } from "./purge.js";
import { statesCommand, statesHelp } from "./states.js";
import { statusCommand, statusHelp } from "./status.js";
import { workerCommand, workerHelp } from "./worker.js";

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string; summary: string }> = {
  worker: { run: workerCommand, help: workerHelp, summary: "run a worker for an app until SIGINT/SIGTERM" },
  config: { run: configCommand, help: configHelp, summary: "show every config value and where it came from" },
  status: { run: statusCommand, help: statusHelp, summary: "show an invocation: status, history, result or error, logs" },
  states: { run: statesCommand, help: statesHelp, summary: "draw the invocation state machine (text, or SVG)" },
  purge: { run: purgeCommand, help: purgeHelp, summary: "delete all data of an app" },
  demo: { run: demoCommand, help: demoHelp, summary: "kill a worker mid-task and watch another recover its work" },
};

const USAGE = `nenc: distributed tasks whose workers heal themselves

usage: nenc <command> [options]      (nenc <command> --help for its options)

${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(8)} ${command.summary}`)
  .join("\n")}

Config comes from defaults < nenc.config.json (or "nenc" in package.json) < code < NENC_* env.
NENC_DEBUG=1 prints the full stack of an error.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" && rest[0] ? COMMANDS[rest[0]] : undefined;
    process.stdout.write(`${topic ? topic.help : USAGE}\n`);
    return 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${await version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`nenc: unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(", ")}`);
  return command.run(rest);
}

async function version(): Promise<string> {
  const { readFileSync } = await import("node:fs");
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

/** One line for the user; the stack only with NENC_DEBUG=1. */
export function report(error: unknown): number {
  const debug = process.env["NENC_DEBUG"] === "1";
  const code = error instanceof CliError ? error.exitCode : error instanceof ConfigError ? 2 : 1;
  const message =
    error instanceof CliError || error instanceof NencError
      ? error.message
      : error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error);
  process.stderr.write(`${/^nenc[: ]/.test(message) ? message : `nenc: ${message}`}\n`);
  if (debug) {
    const detail = error instanceof Error ? (error.cause instanceof Error ? error.cause.stack : error.stack) : undefined;
    if (detail) process.stderr.write(`${detail}\n`);
  } else if (code === 1 && !(error instanceof CliError) && !(error instanceof NencError)) {
    process.stderr.write("(run with NENC_DEBUG=1 for the full stack)\n");
  }
  return code;
}

// Exit explicitly: a command is done when it returns, whatever handles a driver left open.
let code: number;
try {
  code = await main(process.argv.slice(2));
} catch (error) {
  code = report(error);
}
process.exit(code);
