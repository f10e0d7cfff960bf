import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, describe, it } from "node:test";
import { layoutStates, renderStateDiagramSvg, stateEdges, type StateTable } from "../../src/cli/state-diagram.js";
import { APP_KEYS } from "../../src/core/config.js";
import { STATUSES, STATUS_TABLE } from "../../src/core/status.js";
import { Nenc } from "../../src/index.js";
import { defineTasks } from "../fixtures/tasks.js";
import { FIXTURE_TASKS, runNenc, startWorker, type WorkerProcess } from "./nenc-process.js";

const INDEX = pathToFileURL(new URL("../../src/index.ts", import.meta.url).pathname).href;
const root = mkdtempSync(join(tmpdir(), "nenc-cli-"));
let dirs = 0;
const workers: WorkerProcess[] = [];
after(async () => {
  await Promise.all(workers.map((w) => w.kill()));
});

/** A fresh directory for one test, optionally with files in it. */
function workdir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(root, `t${++dirs}-`));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  return dir;
}

/** A SQLite app nobody else uses, as environment for the CLI and for an app in this process. */
function sqliteEnv(appId = "cli_app"): Record<string, string> {
  return { NENC_BACKEND: "sqlite", NENC_SQLITE_PATH: join(workdir(), "data.sqlite"), NENC_APP_ID: appId, NENC_LOG_TO_CONSOLE: "false" };
}

describe("nenc (the command)", () => {
  it("prints its commands with --help and exits 2 on an unknown command", async () => {
    const help = await runNenc(["--help"]);
    assert.equal(help.code, 0);
    for (const command of ["worker", "config", "status", "states", "purge", "demo"])
      assert.match(help.stdout, new RegExp(`^  ${command} `, "m"));
    const unknown = await runNenc(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'nenc: unknown command "frobnicate"; commands: worker, config, status, states, purge, demo\n');
    const badOption = await runNenc(["worker", "--app", FIXTURE_TASKS, "--concurrency", "none"]);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /^nenc worker: --concurrency expects a whole number from 1, got "none"\n$/);
  });
});

describe("nenc config", () => {
  const file = {
    appId: "from_file",
    runnerDeadAfterMs: 5000,
    heartbeatIntervalMs: 400,
    tasks: { sendMail: { maxRetries: 4 } },
  };
  const module = `
    import { Nenc } from ${JSON.stringify(INDEX)};
    export const app = new Nenc({ appId: "from_code", pollIntervalMs: 300 });
    app.task("sendMail", async (to: string) => to, { maxRetries: 2, retryJitter: 0.1 });
    app.task("plain", async () => 1);
  `;

  it("shows each value with its source: default < config file < code < env, and each task's overrides", async () => {
    const dir = workdir({ "nenc.config.json": JSON.stringify(file), "tasks.ts": module });
    const env = { NENC_HEARTBEAT_INTERVAL_MS: "250", NENC_TASK__SEND_MAIL__RETRY_BACKOFF_MS: "10" };
    const result = await runNenc(["config", "--app", "tasks.ts"], { cwd: dir, env });
    assert.equal(result.code, 0, result.stderr);
    const rows = parseRows(result.stdout);
    const configPath = join(dir, "nenc.config.json");
    assert.deepEqual(rows.get("appId"), ["from_code", "code"]);
    assert.deepEqual(rows.get("runnerDeadAfterMs"), ["5000", configPath]);
    assert.deepEqual(rows.get("heartbeatIntervalMs"), ["250", "env NENC_HEARTBEAT_INTERVAL_MS"]);
    assert.deepEqual(rows.get("pollIntervalMs"), ["300", "code"]);
    assert.deepEqual(rows.get("recoveryIntervalMs"), [String(APP_KEYS.recoveryIntervalMs.default), "default"]);
    assert.match(result.stdout, new RegExp(`^config file: ${escape(configPath)}$`, "m"));

    const sendMail = section(result.stdout, "task sendMail: overrides");
    assert.deepEqual(sendMail.get("maxRetries"), ["4", `${configPath} tasks.sendMail`]);
    assert.deepEqual(sendMail.get("retryJitter"), ["0.1", "code (task options)"]);
    assert.deepEqual(sendMail.get("retryBackoffMs"), ["10", "env NENC_TASK__SEND_MAIL__RETRY_BACKOFF_MS"]);
    assert.equal(sendMail.size, 3);
    assert.match(result.stdout, /^task plain: no overrides \(the app's values apply\)$/m);
  });

  it("without --app resolves from the config file and the environment alone", async () => {
    const dir = workdir({ "nenc.config.json": JSON.stringify(file) });
    const result = await runNenc(["config"], { cwd: dir, env: { NENC_RUNNER_DEAD_AFTER_MS: "9000" } });
    assert.equal(result.code, 0, result.stderr);
    const rows = parseRows(result.stdout);
    assert.deepEqual(rows.get("appId"), ["from_file", join(dir, "nenc.config.json")]);
    assert.deepEqual(rows.get("runnerDeadAfterMs"), ["9000", "env NENC_RUNNER_DEAD_AFTER_MS"]);
    assert.deepEqual(rows.get("maxRetries"), ["0", "default"]);
    assert.deepEqual([...rows.keys()], Object.keys(APP_KEYS));
  });

  it("a bad value exits 2 with one line naming the key and where it came from", async () => {
    const dir = workdir({ "nenc.config.json": JSON.stringify({ pollIntervalMs: "soon" }) });
    const fromFile = await runNenc(["config"], { cwd: dir });
    assert.equal(fromFile.code, 2);
    assert.equal(
      fromFile.stderr,
      `nenc: config pollIntervalMs (from ${join(dir, "nenc.config.json")}): expected a whole number, got "soon"\n`,
    );
    const fromEnv = await runNenc(["config"], { cwd: workdir(), env: { NENC_RUNNER_DEAD_AFTER_MS: "-1" } });
    assert.equal(fromEnv.code, 2);
    assert.match(fromEnv.stderr, /^nenc: config runnerDeadAfterMs \(from env NENC_RUNNER_DEAD_AFTER_MS\): expected a number from 200/);
  });
});

describe("nenc states", () => {
  it("prints every status with its flags and exactly the table's transitions", async () => {
    const result = await runNenc(["states"]);
    assert.equal(result.code, 0);
    const lines = result.stdout.split("\n");
    for (const status of STATUSES) {
      const at = lines.findIndex((line) => line.startsWith(`${status} `));
      assert.ok(at >= 0, `${status} is listed`);
      const rule = STATUS_TABLE[status];
      if (rule.final) assert.match(lines[at] ?? "", /\bfinal\b/);
      if (rule.recoverTo) assert.match(lines[at] ?? "", new RegExp(`recovery -> ${rule.recoverTo}\\b`));
      const arrows = lines[at + 2]?.trim() ?? "";
      assert.equal(arrows, `-> ${rule.to.length ? rule.to.join(", ") : "(none: final)"}`);
    }
  });

  it("writes an SVG with one box per status (finals marked) and one arrow per transition of the table", async () => {
    const path = join(workdir(), "states.svg");
    const result = await runNenc(["states", "--svg", path]);
    assert.equal(result.code, 0, result.stderr);
    const svg = readFileSync(path, "utf8");
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*>/);
    assert.match(svg, /<\/svg>\n$/);
    const boxes = [...svg.matchAll(/<g class="status( final)?" data-status="([A-Z_]+)">/g)].map((m) => [m[2], m[1] === " final"]);
    assert.deepEqual(new Map(boxes as [string, boolean][]), new Map(STATUSES.map((s) => [s, STATUS_TABLE[s].final === true])));
    const arrows = [...svg.matchAll(/data-from="([A-Z_]+)" data-to="([A-Z_]+)"/g)].map((m) => `${m[1]}>${m[2]}`).sort();
    const table = STATUSES.flatMap((from) => STATUS_TABLE[from].to.map((to) => `${from}>${to}`)).sort();
    assert.deepEqual(arrows, table);
    assert.equal(svg.split('<path class="transition').length - 1, table.length);
  });

  it("lays out any table: layered, no two boxes overlap, arrows run down the layers except back edges", () => {
    const tiny: StateTable = {
      NEW: { to: ["TAKEN"], claimable: true, description: "new" },
      TAKEN: { to: ["DONE", "NEW"], owned: true, acquires: true, description: "taken" },
      DONE: { to: [], final: true, description: "done" },
    };
    for (const table of [STATUS_TABLE as StateTable, tiny]) {
      const layout = layoutStates(table);
      assert.equal(layout.statuses.length, Object.keys(table).length);
      const byName = new Map(layout.statuses.map((s) => [s.status, s]));
      for (const a of layout.statuses) {
        for (const b of layout.statuses) {
          if (a === b || a.layer !== b.layer) continue;
          assert.ok(a.x + a.width <= b.x || b.x + b.width <= a.x, `${a.status} and ${b.status} overlap`);
        }
      }
      const finalLayer = Math.max(...layout.statuses.map((s) => s.layer));
      for (const s of layout.statuses) if (s.rule.final) assert.equal(s.layer, finalLayer, `${s.status} is at the bottom`);
      for (const edge of layout.edges) {
        const [from, to] = [byName.get(edge.from), byName.get(edge.to)];
        assert.ok(from && to);
        assert.equal(edge.back, from.layer > to.layer, `${edge.from} -> ${edge.to} direction`);
        const ys = edge.points.map((p) => p.y);
        const sorted = [...ys].sort((p, q) => (edge.back ? q - p : p - q));
        assert.deepEqual(ys, sorted, `${edge.from} -> ${edge.to} runs one way`);
      }
      assert.equal(
        layout.edges.length,
        Object.values(table).reduce((n, r) => n + r.to.length, 0),
      );
    }
    // The cycle through a claim is broken at the re-entry into the claiming status.
    assert.deepEqual(
      stateEdges(tiny)
        .filter((e) => e.back)
        .map((e) => `${e.from}>${e.to}`),
      ["TAKEN>NEW"],
    );
    assert.ok(renderStateDiagramSvg(tiny).includes('data-status="TAKEN"'));
  });
});

describe("nenc status and purge", () => {
  it("shows an invocation's status, history with runner, host and pid, result or error, and logs", async () => {
    const env = sqliteEnv();
    const app = new Nenc({ env, configFile: null });
    const tasks = defineTasks(app);
    const failing = app.task("failing", (why: string) => {
      throw new RangeError(why);
    });
    try {
      const worker = await startWorker(env, { app: join(workdir({ "tasks.ts": failingModule() }), "tasks.ts") });
      workers.push(worker);
      const ok = await tasks.ticker.invoke(2, 10);
      const bad = await failing.invoke("out of range on purpose");
      await ok.result({ timeoutMs: 60_000 });
      await assert.rejects(bad.result({ timeoutMs: 60_000 }));

      const shown = await runNenc(["status", ok.id], { env });
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, new RegExp(`^invocation ${ok.id}$`, "m"));
      assert.match(shown.stdout, /^ {2}status {3}SUCCESS$/m);
      const history = shown.stdout.split("\nhistory\n")[1]?.split("\n\n")[0]?.split("\n") ?? [];
      assert.deepEqual(
        history.map((line) => line.trim().split(/\s+/)[0]),
        ["REGISTERED", "PENDING", "RUNNING", "SUCCESS"],
      );
      assert.match(history[3] ?? "", new RegExp(`attempt 1 +${escape(worker.runnerId)} +\\S+ +pid ${worker.pid}$`));
      assert.match(shown.stdout, new RegExp(`^result\\n  "done by pid ${worker.pid}"$`, "m"));
      assert.match(shown.stdout, /^logs \(2\)$/m);
      assert.match(shown.stdout, new RegExp(`INFO  attempt 1 tick 1 pid=${worker.pid}`));

      const failed = await runNenc(["status", bad.id], { env });
      assert.equal(failed.code, 0, failed.stderr);
      assert.match(failed.stdout, /^ {2}status {3}FAILED$/m);
      assert.match(failed.stdout, /^error\n {2}RangeError: out of range on purpose$/m);
    } finally {
      await app.close();
    }
  });

  it("exits 1 with one clear line for an unknown id", async () => {
    const env = sqliteEnv("cli_unknown");
    const result = await runNenc(["status", "no-such-id"], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `nenc: no invocation no-such-id in app cli_unknown (backend sqlite ${env["NENC_SQLITE_PATH"]})\n`);
    const missing = await runNenc(["status"], { env });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^nenc status: give an invocation id/);
  });

  it("purge deletes the app's data (no question asked without a terminal)", async () => {
    const env = sqliteEnv("cli_purge");
    const app = new Nenc({ env, configFile: null });
    const { double } = defineTasks(app);
    try {
      await double.parallelize([[1], [2], [3]]);
      assert.equal((await (await app.backend()).state.counts())["REGISTERED"], 3);
      const result = await runNenc(["purge"], { env });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^purged app cli_purge \(backend sqlite /);
      assert.deepEqual(await (await app.backend()).state.counts(), {});
    } finally {
      await app.close();
    }
  });
});

describe("nenc worker: loading the app module", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["a missing file", {}, /^nenc: cannot load app module nope\.ts: no such file \(.*\/nope\.ts\)$/],
    [
      "a module that throws on import",
      { "nope.ts": 'throw new Error("kaput at import");' },
      /^nenc: cannot load app module nope\.ts: importing it threw Error: kaput at import$/,
    ],
    [
      "a syntax error",
      { "nope.ts": "export const x = ;" },
      /^nenc: cannot load app module nope\.ts: importing it threw TransformError: .*Unexpected ";"/,
    ],
    [
      "a missing import",
      { "nope.ts": 'import "./not-here.js";' },
      /^nenc: cannot load app module nope\.ts: importing it threw Error: Cannot find module '\.\/not-here\.js'/,
    ],
    [
      "no app",
      { "nope.ts": "export const answer = 42;" },
      /^nenc: app module nope\.ts exports no Nenc app \(exports: answer\); add: export const app = new Nenc/,
    ],
    [
      "two apps and no 'app' export",
      {
        "nope.ts": `import { Nenc } from ${JSON.stringify(INDEX)};\nexport const a = new Nenc({ appId: "a" });\nexport const b = new Nenc({ appId: "b" });`,
      },
      /^nenc: app module nope\.ts exports 2 Nenc apps \(a, b\); export the one to run as "app" or as the default export$/,
    ],
  ];
  for (const [what, files, message] of cases) {
    it(`${what}: exit 2 with one line naming the file`, async () => {
      const result = await runNenc(["worker", "--app", "nope.ts"], { cwd: workdir(files), env: sqliteEnv() });
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr.split("\n").filter(Boolean).length, 1, result.stderr);
      assert.match(result.stderr.trim(), message);
      assert.equal(result.stdout, "");
    });
  }

  it("finds the default export, and the only Nenc among other exports", async () => {
    for (const body of [
      `import { Nenc } from ${JSON.stringify(INDEX)};\nexport default new Nenc({ appId: "by_default" });\nexport const other = 1;`,
      `import { Nenc } from ${JSON.stringify(INDEX)};\nexport const mine = new Nenc({ appId: "only_one" });\nexport const other = 1;`,
    ]) {
      const dir = workdir({ "tasks.ts": body });
      const result = await runNenc(["config", "--app", "tasks.ts"], { cwd: dir });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^appId +(by_default|only_one) +code$/m);
    }
  });

  it("with --runner process runs tasks in child processes of the worker", async () => {
    const env = sqliteEnv("cli_process_runner");
    const worker = await startWorker(env, { args: ["--runner", "process", "--concurrency", "2"] });
    workers.push(worker);
    assert.match(worker.output, /started \(pid \d+, runner process, concurrency 2, backend sqlite\)/);
    const app = new Nenc({ env, configFile: null });
    try {
      const { pid } = await defineTasks(app)
        .slow.invoke(0, 0)
        .then((inv) => inv.result({ timeoutMs: 60_000 }));
      assert.notEqual(pid, worker.pid);
      assert.notEqual(pid, process.pid);
    } finally {
      await app.close();
    }
    assert.equal((await worker.stop()).code, 0);
  });
});

describe("nenc demo", () => {
  it("tells the seed's story: SIGKILL worker 1 mid-task, worker 2 recovers all three, exit 0", async () => {
    const dir = workdir();
    const result = await runNenc(["demo"], { cwd: dir, env: { NENC_LOG_TO_CONSOLE: "false" }, timeoutMs: 180_000 });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const steps = [...result.stdout.matchAll(/^STEP (\d):/gm)].map((m) => m[1]);
    assert.deepEqual(steps, ["1", "2", "3", "4", "5"]);
    assert.match(result.stdout, new RegExp(`backend sqlite ${escape(join(dir, ".nenc", "recovery_demo.sqlite"))}`));
    assert.match(result.stdout, /X Worker-1 terminated \(signal SIGKILL\)/);
    for (const n of [0, 1, 2]) {
      assert.match(result.stdout, new RegExp(`OK slowTask completed: task_${n}_completed`));
      assert.match(
        result.stdout,
        new RegExp(
          `slowTask\\(${n}\\): taken back \\(RUNNING_RECOVERY\\) [\\d.]+ s after the kill, re-run \\(attempt 2\\) started [\\d.]+ s after the kill`,
        ),
      );
    }
    assert.match(result.stdout, /ALL 3 TASKS COMPLETED SUCCESSFULLY/);
  });
});

/** key -> [value, source] from the app table of `nenc config`. */
function parseRows(stdout: string): Map<string, [string, string]> {
  const table = stdout.split("\n\n")[1] ?? "";
  return rowsOf(table.split("\n").slice(1));
}

function section(stdout: string, heading: string): Map<string, [string, string]> {
  const block = stdout.split(`${heading}\n`)[1]?.split("\n\n")[0] ?? "";
  return rowsOf(block.split("\n").slice(1));
}

function rowsOf(lines: string[]): Map<string, [string, string]> {
  const rows = new Map<string, [string, string]>();
  for (const line of lines) {
    const match = /^\s*(\S+)\s{2,}(.+?)\s{2,}(.+)$/.exec(line);
    if (match?.[1] && match[2] && match[3]) rows.set(match[1], [match[2], match[3]]);
  }
  return rows;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The fixture tasks plus one that fails, as a module of its own. */
function failingModule(): string {
  const fixture = pathToFileURL(FIXTURE_TASKS).href;
  return `
    import { Nenc } from ${JSON.stringify(INDEX)};
    import { defineTasks } from ${JSON.stringify(fixture)};
    export const app = new Nenc({ appId: "cli_app" });
    defineTasks(app);
    app.task("failing", (why: string) => { throw new RangeError(why); });
  `;
}
