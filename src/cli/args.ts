import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./cli-error.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** node's parseArgs, with its errors turned into one-line usage errors naming the command. */
export function parseCommand<O extends Options>(command: string, argv: string[], options: O, positionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: positionals > 0,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`nenc ${command}: ${(error as Error).message.split("\n")[0]} (see nenc ${command} --help)`);
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(
      `nenc ${command}: unexpected argument ${JSON.stringify(parsed.positionals[positionals])} (see nenc ${command} --help)`,
    );
  }
  return parsed;
}

/** A whole number option, or a usage error naming it. */
export function intOption(command: string, name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`nenc ${command}: --${name} expects a whole number from ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function oneOfOption<const T extends string>(
  command: string,
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw)) {
    throw new UsageError(`nenc ${command}: --${name} expects one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/** Print a command's help; its exit code. */
export function help(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}
