import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { STATUSES, STATUS_TABLE, type StatusRule } from "../core/status.js";
import { help, parseCommand } from "./args.js";
import { CliError } from "./cli-error.js";
import { renderStateDiagramSvg, statusFlags } from "./state-diagram.js";

export const statesHelp = `nenc states [--svg <file>]

Print the invocation state machine as it is defined (STATUS_TABLE in src/core/status.ts): each
status, its flags and the statuses it may move to. With --svg, also write it as an SVG diagram.`;

export async function statesCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("states", argv, { svg: { type: "string" } });
  if (values.help) return help(statesHelp);
  process.stdout.write(renderStatesText());
  if (values.svg !== undefined) {
    const path = resolve(values.svg);
    try {
      writeFileSync(path, renderStateDiagramSvg());
    } catch (error) {
      throw new CliError(`nenc states: cannot write ${path}: ${(error as Error).message}`);
    }
    process.stdout.write(`\nwrote the diagram to ${path}\n`);
  }
  return 0;
}

export function renderStatesText(): string {
  const width = Math.max(...STATUSES.map((s) => s.length));
  const lines = [
    `nenc invocation states (${STATUSES.length} statuses, ${STATUSES.reduce((n, s) => n + STATUS_TABLE[s].to.length, 0)} transitions)`,
    "",
  ];
  for (const status of STATUSES) {
    const rule = STATUS_TABLE[status];
    lines.push(`${status.padEnd(width)}  ${flagsOf(rule).join(", ") || "-"}`);
    lines.push(`${"".padEnd(width)}  ${rule.description}`);
    lines.push(`${"".padEnd(width)}  -> ${rule.to.length ? rule.to.join(", ") : "(none: final)"}`);
    lines.push("");
  }
  lines.push(
    "flags: final = nothing leaves it; claimable = in the queue, a runner may claim it;",
    "       owned = leaving it is its owner's right only; claim = entering it makes the runner the",
    "       owner and bumps the attempt (fencing); overrides owner = recovery may enter it from an",
    "       owned status; recovery -> X = where recovery moves it when its owner is dead",
    "",
  );
  return lines.join("\n");
}

function flagsOf(rule: StatusRule): string[] {
  return [...statusFlags(rule), ...(rule.recoverTo ? [`recovery -> ${rule.recoverTo}`] : [])];
}
