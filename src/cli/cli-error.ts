/**
 * An error the CLI reports as one line and an exit code: 2 for usage, config and app-load
 * problems (nothing was attempted), 1 for a command that ran and failed.
 */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string) {
    super(message, 2);
  }
}
