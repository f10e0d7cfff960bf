/**
 * What only the SQLite backend has: one file per app, its schema version, rows damaged on disk,
 * and wake-ups between processes through the file system. The behaviour every backend shares is
 * in the conformance suite (sqlite.test.ts).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { NencError } from "../../src/core/errors.js";
import { planTransition } from "../../src/core/transition.js";
import { CorruptRecordError, createSqliteBackend, type SqliteBackend } from "../../src/backends/sqlite/sqlite-backend.js";
import { SCHEMA_VERSION } from "../../src/backends/sqlite/sqlite-schema.js";
import type { NewInvocation } from "../../src/ports/records.js";

const dir = mkdtempSync(join(tmpdir(), "nenc-sqlite-specific-"));
let files = 0;
const freshPath = () => join(dir, `case-${++files}`, "app.sqlite");
const open: SqliteBackend[] = [];
after(async () => {
  for (const backend of open) await backend.close();
});

function backendAt(path: string, appId = "app", onCorruptRow?: (error: CorruptRecordError) => void): SqliteBackend {
  const backend = createSqliteBackend({ path, appId, ...(onCorruptRow ? { onCorruptRow } : {}) });
  open.push(backend);
  return backend;
}

function invocation(i: number, at = Date.now()): NewInvocation {
  return { id: `inv-${i}`, taskId: "t", callId: `t:${i}`, args: `[${i}]`, parentId: null, createdAt: at, readyAt: at };
}

/** Change a stored row behind nenc's back, as a damaged disk or a foreign tool would. */
function tamper(path: string, sql: string, ...params: unknown[]): void {
  const raw = new Database(path);
  try {
    raw.prepare(sql).run(...params);
  } finally {
    raw.close();
  }
}

async function registerRunner(backend: SqliteBackend, id: string): Promise<void> {
  const now = Date.now();
  await backend.orchestrator.registerRunner(
    { id, kind: "async", hostId: "h", hostname: "host-x", pid: 77, pidStart: null, startedAt: now },
    now,
  );
}

describe("sqlite: one file per app", () => {
  it("creates the file and its directories, in WAL mode, at the current schema version", async () => {
    const path = freshPath();
    const backend = backendAt(path);
    await backend.orchestrator.register([invocation(1)]);
    assert.ok(existsSync(path));
    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
      assert.equal(raw.pragma("user_version", { simple: true }), SCHEMA_VERSION);
      assert.equal(raw.prepare("SELECT value FROM meta WHERE key = 'app_id'").pluck().get(), "app");
    } finally {
      raw.close();
    }
  });

  it("refuses a file of another app, naming both apps", async () => {
    const path = freshPath();
    await backendAt(path, "billing").close();
    assert.throws(
      () => createSqliteBackend({ path, appId: "shipping" }),
      (error: unknown) => error instanceof NencError && /"billing"/.test(error.message) && /"shipping"/.test(error.message),
    );
  });

  it("refuses a file written by a newer schema, and an SQLite file nenc did not create", async () => {
    const newer = freshPath();
    await createSqliteBackend({ path: newer, appId: "app" }).close();
    tamper(newer, `PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    assert.throws(() => createSqliteBackend({ path: newer, appId: "app" }), /newer than this nenc understands/);

    const other = join(dir, "foreign.sqlite");
    tamper(other, "CREATE TABLE customers (id INTEGER PRIMARY KEY)");
    assert.throws(() => createSqliteBackend({ path: other, appId: "app" }), /did not create/);
  });

  it("refuses a file whose tables do not match its schema version, saying so", async () => {
    const path = freshPath();
    await createSqliteBackend({ path, appId: "app" }).close();
    tamper(path, "DROP TRIGGER invocations_history");
    tamper(path, "ALTER TABLE invocations DROP COLUMN changes");
    assert.throws(() => createSqliteBackend({ path, appId: "app" }), /does not have the tables of nenc schema version/);
  });

  it("refuses a file that is not a database with a clear error", () => {
    const path = join(dir, "not-a-database.sqlite");
    writeFileSync(path, "this is a text file, not SQLite, and long enough to have a header ".repeat(20));
    assert.throws(
      () => createSqliteBackend({ path, appId: "app" }),
      (error: unknown) => error instanceof NencError && error.message.includes(path),
    );
  });

  it("rebuilds an index derived from the status table when its definition changed", async () => {
    const path = freshPath();
    await backendAt(path).close();
    tamper(path, "DROP INDEX invocations_active");
    tamper(path, "CREATE INDEX invocations_active ON invocations(status) WHERE status = 'RUNNING'");
    await backendAt(path).close();
    const raw = new Database(path, { readonly: true });
    try {
      const sql = raw.prepare("SELECT sql FROM sqlite_master WHERE name = 'invocations_active'").pluck().get() as string;
      assert.match(sql, /status = 'PENDING'/);
      assert.match(sql, /status = 'PAUSED'/);
    } finally {
      raw.close();
    }
  });
});

describe("sqlite: damaged rows", () => {
  it("a row with an unknown status fails on its own: get names it, list and counts leave it out and report it", async () => {
    const path = freshPath();
    const reported: CorruptRecordError[] = [];
    const backend = backendAt(path, "app", (error) => reported.push(error));
    await backend.orchestrator.register([invocation(1), invocation(2), invocation(3)]);
    tamper(path, "UPDATE invocations SET status = 'EXPLODED' WHERE id = 'inv-2'");

    await assert.rejects(backend.state.get("inv-2"), (error: unknown) => {
      assert.ok(error instanceof CorruptRecordError);
      assert.match(error.message, /inv-2/);
      assert.match(error.message, /status/);
      assert.match(error.message, /EXPLODED/);
      return true;
    });
    assert.equal((await backend.state.get("inv-1"))?.status, "REGISTERED");
    assert.deepEqual(
      (await backend.state.list({})).map((r) => r.id),
      ["inv-1", "inv-3"],
    );
    assert.deepEqual(await backend.state.counts(), { REGISTERED: 2 });
    assert.ok(
      reported.some((e) => e.key === "inv-2" && e.field === "status"),
      "the bad row was reported",
    );
    // It is not claimable either, while the sound rows still are.
    await registerRunner(backend, "r");
    assert.deepEqual(
      (await backend.broker.claim("r", 10, Date.now())).map((c) => c.id),
      ["inv-1", "inv-3"],
    );
  });

  it("a field stored as a blob instead of text fails that row only", async () => {
    const path = freshPath();
    const reported: CorruptRecordError[] = [];
    const backend = backendAt(path, "app", (error) => reported.push(error));
    await backend.orchestrator.register([invocation(1), invocation(2)]);
    tamper(path, "UPDATE invocations SET call_id = ? WHERE id = 'inv-1'", Buffer.from([0xff, 0xfe, 0x00]));
    await assert.rejects(backend.state.get("inv-1"), /callId is a 3-byte blob/);
    assert.deepEqual(
      (await backend.state.list({})).map((r) => r.id),
      ["inv-2"],
    );
    assert.equal(reported.length, 1);
  });

  it("claims a row whose arguments are a blob, so a worker can fail it with a clear error", async () => {
    const path = freshPath();
    const backend = backendAt(path);
    await backend.orchestrator.register([invocation(1)]);
    tamper(path, "UPDATE invocations SET args = ? WHERE id = 'inv-1'", Buffer.from([0xff, 0x00, 0x01]));
    await registerRunner(backend, "r");
    const [claimed] = await backend.broker.claim("r", 1, Date.now());
    assert.equal(claimed?.id, "inv-1");
    assert.equal(typeof claimed?.args, "string");
    assert.throws(() => JSON.parse(claimed.args) as unknown);
  });

  it("history and logs leave out a damaged entry and keep the rest", async () => {
    const path = freshPath();
    const reported: CorruptRecordError[] = [];
    const backend = backendAt(path, "app", (error) => reported.push(error));
    await registerRunner(backend, "r");
    await backend.orchestrator.register([invocation(1)]);
    const [claimed] = await backend.broker.claim("r", 1, Date.now());
    const running = planTransition({ id: "inv-1", status: "PENDING", attempt: claimed!.attempt, owner: "r" }, "RUNNING", {
      by: "r",
      at: Date.now(),
    });
    assert.deepEqual(await backend.orchestrator.transition([running]), [true]);
    const line = { invocationId: "inv-1", attempt: 1, runnerId: "r", at: Date.now(), level: "info" as const };
    assert.equal(
      await backend.state.appendLogs([
        { ...line, message: "one" },
        { ...line, message: "two" },
      ]),
      2,
    );
    tamper(path, "UPDATE history SET status = 'LOST' WHERE status = 'PENDING'");
    tamper(path, "UPDATE logs SET level = 'loud' WHERE message = 'one'");
    assert.deepEqual(
      (await backend.state.history("inv-1")).map((h) => [h.status, h.hostname, h.pid]),
      [
        ["REGISTERED", null, null],
        ["RUNNING", "host-x", 77],
      ],
    );
    assert.deepEqual(
      (await backend.state.logs("inv-1")).map((l) => l.message),
      ["two"],
    );
    assert.deepEqual(
      reported.map((e) => [e.table, e.field]),
      [
        ["history", "status"],
        ["logs", "level"],
      ],
    );
  });
});

describe("sqlite: several processes on one file", () => {
  const backendModule = new URL("../../src/backends/sqlite/sqlite-backend.ts", import.meta.url).href;

  interface Child {
    /** Resolves when the child printed "ready". */
    readonly ready: Promise<void>;
    /** Release a child waiting on `await go` in its script. */
    go(): void;
    /** Resolves with what it printed after "ready", once it exited 0. */
    readonly output: Promise<string>;
  }

  /**
   * Run a script in another node process with `createSqliteBackend` in scope, and `ready()` and
   * `go` to line several children up before they start together.
   */
  function child(script: string, env: Record<string, string>): Child {
    const code = `const { createSqliteBackend } = await import(${JSON.stringify(backendModule)});
      const ready = () => console.log("ready");
      const go = new Promise((resolve) => process.stdin.once("data", resolve));
      ${script}
      process.stdin.destroy();`;
    const proc = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let signalReady = () => {};
    const ready = new Promise<void>((resolve) => (signalReady = resolve));
    proc.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.startsWith("ready\n")) signalReady();
    });
    proc.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const output = new Promise<string>((resolve, reject) => {
      proc.on("error", reject);
      proc.on("exit", (code) => (code === 0 ? resolve(out.replace(/^ready\n/, "")) : reject(new Error(`child exited ${code}: ${err}`))));
    });
    return { ready: Promise.race([ready, output.then(() => undefined)]), go: () => proc.stdin.end("go\n"), output };
  }

  it("two processes claiming from one file at once get every invocation exactly once", async () => {
    const path = freshPath();
    const backend = backendAt(path);
    // Enough that one process cannot drain them all before the other starts, even on a busy machine.
    const count = 20_000;
    await backend.orchestrator.register(Array.from({ length: count }, (_, i) => invocation(i)));
    const claimer = `
      const backend = createSqliteBackend({ path: process.env.DB, appId: "app" });
      const now = Date.now();
      await backend.orchestrator.registerRunner({ id: process.env.RUNNER, kind: "async", hostId: "h", hostname: "h", pid: process.pid, pidStart: null, startedAt: now }, now);
      const ids = [];
      ready();
      await go;
      for (;;) {
        const claimed = await backend.broker.claim(process.env.RUNNER, 5, Date.now());
        if (claimed.length === 0) break;
        for (const c of claimed) ids.push(c.id);
      }
      await backend.close();
      console.log(JSON.stringify(ids));`;
    const children = ["p1", "p2"].map((runner) => child(claimer, { DB: path, RUNNER: runner }));
    // Both start together, so that they really contend for the file's lock.
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.go();
    const [one, two] = (await Promise.all(children.map((c) => c.output))).map((out) => JSON.parse(out) as string[]);
    assert.equal(one!.length + two!.length, count);
    assert.equal(new Set([...one!, ...two!]).size, count, "no invocation claimed twice");
    assert.ok(one!.length > 0 && two!.length > 0, "both processes claimed some");
    const owners = await backend.state.counts();
    assert.deepEqual(owners, { PENDING: count });
  });

  it("wakes a subscriber when another process writes, through the file system", async () => {
    const path = freshPath();
    const backend = backendAt(path);
    let woken = 0;
    const unsubscribe = backend.broker.subscribe(() => woken++);
    try {
      const writer = child(
        `const backend = createSqliteBackend({ path: process.env.DB, appId: "app" });
         const now = Date.now();
         await backend.orchestrator.register([{ id: "from-afar", taskId: "t", callId: "t:x", args: "[]", parentId: null, createdAt: now, readyAt: now }]);
         await backend.close();`,
        { DB: path },
      );
      await writer.output;
      // This connection wrote nothing and nothing polls: only the watcher can have woken it.
      const deadline = Date.now() + 10_000;
      while (woken === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(woken > 0, "the subscriber was woken by the other process's write");
      assert.equal(await backend.broker.queueLength(Date.now()), 1);
    } finally {
      unsubscribe();
    }
  });

  it("close() closes the connection, even with a subscriber", async () => {
    const path = freshPath();
    const backend = createSqliteBackend({ path, appId: "app" });
    backend.broker.subscribe(() => {});
    await backend.orchestrator.register([invocation(1)]);
    await backend.close();
    await assert.rejects(backend.state.get("inv-1"), /not open/);
  });
});
