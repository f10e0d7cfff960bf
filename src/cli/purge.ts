import { createInterface } from "node:readline/promises";
import { help, parseCommand } from "./args.js";
import { describeBackend } from "./describe-backend.js";
import { appFor } from "./load-app.js";

export const purgeHelp = `nenc purge [--app <module>] [--yes]

Delete every invocation, history entry, log line, runner and lease of the app. Asks first when
run in a terminal, unless --yes.`;

export async function purgeCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("purge", argv, { app: { type: "string" }, yes: { type: "boolean", short: "y" } });
  if (values.help) return help(purgeHelp);
  const app = await appFor(values.app);
  const where = `app ${app.appId} (backend ${describeBackend(app.config)})`;
  if (!values.yes && process.stdin.isTTY && !(await confirm(`Delete all data of ${where}? [y/N] `))) {
    process.stdout.write("nothing deleted\n");
    return 1;
  }
  try {
    const backend = await app.backend();
    await backend.state.purge();
  } finally {
    await app.close();
  }
  process.stdout.write(`purged ${where}\n`);
  return 0;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
