import { format } from "node:util";
import type { LogLevel } from "../ports/records.js";
import { taskContext } from "./context.js";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly toConsole: boolean;
}

/**
 * app.logger: inside a task each line is stamped with the invocation, task, attempt and runner,
 * and stored with the invocation; outside a task it only prints.
 */
export class Logger {
  readonly #options: () => LoggerOptions;
  constructor(options: () => LoggerOptions) {
    this.#options = options;
  }

  debug(...args: unknown[]): void {
    this.#write("debug", args);
  }
  info(...args: unknown[]): void {
    this.#write("info", args);
  }
  warn(...args: unknown[]): void {
    this.#write("warn", args);
  }
  error(...args: unknown[]): void {
    this.#write("error", args);
  }

  #write(level: LogLevel, args: unknown[]): void {
    const options = this.#options();
    if (RANK[level] < RANK[options.level]) return;
    const message = format(...args);
    const context = taskContext.getStore();
    context?.log(level, message);
    if (!options.toConsole) return;
    const stamp = context ? ` ${context.taskId} inv=${context.invocationId} attempt=${context.attempt} runner=${context.runnerId}` : "";
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()}${stamp} ${message}\n`);
  }
}
