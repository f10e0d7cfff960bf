import { help, intOption, oneOfOption, parseCommand } from "./args.js";
import { UsageError } from "./cli-error.js";
import { loadApp } from "./load-app.js";

export const workerHelp = `nenc worker --app <module> [--concurrency N] [--runner async|process]

Run a worker for the app exported by <module> (.ts or .js, relative to the working directory)
until SIGINT or SIGTERM. On a signal it stops gracefully: invocations it is running go
KILLED -> REROUTED so another worker picks them up, then it exits 0. A second signal exits at once.

  --app <module>       the task module; its app is the export "app", the default export, or the only Nenc
  --concurrency N      tasks run at once (default: config concurrency; 50 async, one per core process)
  --runner KIND        async (tasks in this event loop) or process (a pool of child processes)`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("worker", argv, {
    app: { type: "string" },
    concurrency: { type: "string" },
    runner: { type: "string" },
  });
  if (values.help) return help(workerHelp);
  if (values.app === undefined) throw new UsageError("nenc worker: --app <module> is required (see nenc worker --help)");
  const concurrency = intOption("worker", "concurrency", values.concurrency, 1);
  const runner = oneOfOption("worker", "runner", values.runner, ["async", "process"] as const);
  const { app, modulePath } = await loadApp(values.app);
  const stopped = untilSignal();
  const worker = await app.startWorker({
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(runner !== undefined ? { runner } : {}),
    appModule: modulePath,
  });
  const backend = await app.backend();
  process.stdout.write(
    `nenc worker ${worker.runnerId} started (pid ${process.pid}, runner ${worker.kind}, concurrency ${worker.concurrency}, backend ${backend.kind})\n`,
  );
  const signal = await stopped;
  process.stdout.write(`nenc worker ${worker.runnerId} stopping (${signal}): rerouting ${worker.activeCount} running invocation(s)\n`);
  await worker.stop();
  await app.close();
  process.stdout.write(`nenc worker ${worker.runnerId} stopped\n`);
  return 0;
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        process.stderr.write(`nenc worker: ${signal} again, exiting without a clean stop (recovery will reroute the rest)\n`);
        process.exit(1);
      }
      received = true;
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
