import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { isDeepStrictEqual } from "node:util";
import { describe, it } from "node:test";
import pg from "pg";
import { createPostgresBackend, type PostgresBackend } from "../../src/backends/postgres/postgres-backend.js";
import { arrayLiteral } from "../../src/backends/postgres/postgres-arrays.js";
import { CLAIM, PostgresBroker } from "../../src/backends/postgres/postgres-broker.js";
import { PostgresListener } from "../../src/backends/postgres/postgres-listener.js";
import { transitionShape, transitionStatement } from "../../src/backends/postgres/postgres-orchestrator.js";
import { APPEND_LOGS } from "../../src/backends/postgres/postgres-state.js";
import { PostgresConnection } from "../../src/backends/postgres/postgres-connection.js";
import { MIGRATIONS } from "../../src/backends/postgres/postgres-migrations.js";
import { historyHead, historyTail } from "../../src/backends/postgres/postgres-history.js";
import { CLAIMABLE_STATUSES, CLAIMED_STATUS, STARTED_STATUS } from "../../src/core/status.js";
import { planTransition } from "../../src/core/transition.js";
import type { NewInvocation } from "../../src/ports/records.js";
import { runConformance } from "../conformance/suite.js";
import { newInvocation, purgeApps, remoteRunner, sleep } from "../conformance/harness.js";

const url = "postgres://127.0.0.1:5432/test";

runConformance({
  name: "postgres",
  env: () => ({ NENC_BACKEND: "postgres", NENC_POSTGRES_URL: url, NENC_APP_ID: `test-${randomUUID()}` }),
  cleanUp: purgeApps,
});

describe("postgres: apps sharing one server", () => {
  it("never see each other's invocations, runners or leases, and purge empties one app only", async () => {
    const one = await createPostgresBackend({ url, appId: `isolation-${randomUUID()}` });
    const two = await createPostgresBackend({ url, appId: `isolation-${randomUUID()}` });
    try {
      const now = Date.now();
      for (const b of [one, two]) await b.orchestrator.registerRunner(remoteRunner("r", now), now);
      const shared = newInvocation("t", [1], now);
      const onlyOne = newInvocation("t", [2], now);
      const onlyTwo = newInvocation("t", [3], now);
      await one.orchestrator.register([shared, onlyOne]);
      await two.orchestrator.register([{ ...shared, args: "[10]" }, onlyTwo]);
      assert.equal(await one.state.get(onlyTwo.id), null);
      assert.equal((await two.state.get(shared.id))?.args, "[10]", "the same id in another app is another invocation");
      assert.deepEqual(new Set((await one.state.list({})).map((r) => r.id)), new Set([shared.id, onlyOne.id]));
      assert.deepEqual(await two.state.counts(), { REGISTERED: 2 });
      assert.equal(await one.orchestrator.acquireLease("recovery", "r", now, 60_000), true);
      assert.equal(await two.orchestrator.acquireLease("recovery", "other", now, 60_000), true, "a lease of the same name in another app");

      const claimed = await one.broker.claim("r", 10, now);
      assert.deepEqual(new Set(claimed.map((c) => c.id)), new Set([shared.id, onlyOne.id]));
      assert.equal(await two.broker.queueLength(now), 2, "the other app's queue is untouched");
      assert.equal((await two.state.get(shared.id))?.status, "REGISTERED");

      await one.state.purge();
      assert.deepEqual(await one.state.list({}), []);
      assert.deepEqual(await one.orchestrator.runners(), []);
      assert.equal((await two.state.list({})).length, 2);
      assert.deepEqual(
        (await two.orchestrator.runners()).map((r) => r.id),
        ["r"],
      );
      assert.equal(
        await two.orchestrator.acquireLease("recovery", "third", now + 1, 60_000),
        false,
        "its lease survived the other app's purge",
      );
      assert.deepEqual(
        (await two.state.history(shared.id)).map((h) => h.status),
        ["REGISTERED"],
      );
    } finally {
      await two.state.purge();
      await one.close();
      await two.close();
    }
  });
});

describe("postgres: array parameters", () => {
  it("reach the server as the very values sent, whatever characters they hold", async () => {
    const db = await PostgresConnection.open({ url, appId: "arrays" });
    await db.ready();
    try {
      const texts = ["plain", 'with "quotes"', 'back\\slash \\"', "{braces}, commas", "NULL", "", "ünïcødé ✓", " spaced ", null];
      const [row] = await db.query<{ texts: (string | null)[]; numbers: string[]; flags: boolean[] }>(
        "SELECT $1::text[] AS texts, $2::bigint[]::text[] AS numbers, $3::boolean[] AS flags",
        [arrayLiteral(texts), arrayLiteral([0, -7, 1764352800123, 2 ** 53 - 1]), arrayLiteral([true, false])],
      );
      assert.deepEqual(row?.texts, texts);
      assert.deepEqual(row?.numbers, ["0", "-7", "1764352800123", String(2 ** 53 - 1)]);
      assert.deepEqual(row?.flags, [true, false]);
      assert.throws(() => arrayLiteral([Number.NaN]), /cannot send NaN in an array parameter/);
    } finally {
      await db.close();
    }
  });

  it("carry history entries as the JSON they stand for, whatever the runner id holds", async () => {
    await withApp("entries", async (backend) => {
      const now = Date.now();
      const runners = ["vm-1-abc", 'a "quoted" one', "back\\slash", "ünïcødé ✓", "{braces},and,commas", null];
      const invocations = runners.map((_, i) => newInvocation("t", [i], now));
      await backend.orchestrator.register(invocations);
      // One batch with a runner per request (the runner sent as an array), then a batch of one per
      // runner (the runner sent once).
      const pending = invocations.map((inv, i) =>
        planTransition({ id: inv.id, status: "REGISTERED", attempt: 0, owner: null }, CLAIMED_STATUS, { by: runners[i]!, at: now + 1 }),
      );
      assert.deepEqual(
        await backend.orchestrator.transition(pending),
        runners.map(() => true),
      );
      for (const [i, request] of pending.entries()) {
        const state = { id: request.id, status: request.to, attempt: request.attempt, owner: request.owner };
        const started = planTransition(state, STARTED_STATUS, { by: runners[i]!, at: now + 2 + i });
        assert.deepEqual(await backend.orchestrator.transition([started]), [true]);
      }
      for (const [i, inv] of invocations.entries()) {
        assert.deepEqual(
          (await backend.state.history(inv.id)).map((h) => [h.status, h.at, h.attempt, h.runnerId]),
          [
            ["REGISTERED", now, 0, null],
            [CLAIMED_STATUS, now + 1, 1, runners[i]],
            [STARTED_STATUS, now + 2 + i, 1, runners[i]],
          ],
          `the history of the invocation runner ${JSON.stringify(runners[i])} moved`,
        );
      }
    });
  });
});

describe("postgres: transition batches of every shape", () => {
  it("write each request's own values, whichever columns vary within the batch", async () => {
    // A batch sends a column as an array only when its requests differ there; here every column
    // differs somewhere, and each request must still land with its own values.
    await withApp("shapes", async (backend) => {
      const now = Date.now();
      await backend.orchestrator.registerRunner(remoteRunner("r", now), now);
      const [a, b, c] = [newInvocation("t", [1], now), newInvocation("t", [2], now + 1), newInvocation("t", [3], now + 2)];
      await backend.orchestrator.register([a, b]);
      assert.equal((await backend.broker.claim("r", 2, now + 1, { start: true })).length, 2);
      await backend.orchestrator.register([c]);
      const running = (id: string) => ({ id, status: STARTED_STATUS, attempt: 1, owner: "r" });
      const requests = [
        planTransition(running(a.id), "SUCCESS", { by: "r", at: now + 10, result: "[1]" }),
        planTransition(running(b.id), "RETRY", { by: "r", at: now + 11, error: '{"message":"no"}', retries: 1, readyAt: now + 5000 }),
        planTransition({ id: c.id, status: "REGISTERED", attempt: 0, owner: null }, "PENDING", { by: "q", at: now + 12 }),
      ];
      assert.deepEqual(await backend.orchestrator.transition(requests), [true, true, true]);
      const [ra, rb, rc] = await Promise.all([a, b, c].map((inv) => backend.state.get(inv.id)));
      assert.deepEqual(
        [ra, rb, rc].map((r) => [r?.status, r?.owner, r?.attempt, r?.result, r?.error, r?.retries, r?.readyAt, r?.updatedAt]),
        [
          ["SUCCESS", null, 1, "[1]", null, 0, null, now + 10],
          ["RETRY", null, 1, null, '{"message":"no"}', 1, now + 5000, now + 11],
          ["PENDING", "q", 1, null, null, 0, null, now + 12],
        ],
      );
      assert.deepEqual(
        (await backend.state.history(b.id)).map((h) => [h.status, h.attempt, h.runnerId]),
        [
          ["REGISTERED", 0, null],
          [CLAIMED_STATUS, 1, "r"],
          [STARTED_STATUS, 1, "r"],
          ["RETRY", 1, "r"],
        ],
      );
      assert.deepEqual(
        await backend.orchestrator.transition([requests[0]!, requests[2]!]),
        [false, false],
        "applied once: a second batch expecting the same states is refused",
      );
    });
  });
});

describe("postgres: where a claim starts", () => {
  it("after the runner's last claim; behind it only a claim that comes back short or a walk of the whole queue looks", async () => {
    await withApp("walk", async (backend, appId) => {
      // A broker whose walks of the whole queue the test times, on a connection of its own.
      const wholeQueueEveryMs = 400;
      const db = await PostgresConnection.open({ url, appId });
      const listener = new PostgresListener(db);
      const broker = new PostgresBroker(db, listener, wholeQueueEveryMs);
      try {
        const now = Date.now();
        await backend.orchestrator.registerRunner(remoteRunner("r", now), now);
        const claim = async (max: number) => (await broker.claim("r", max, now + 10)).map((c) => c.args);
        await backend.orchestrator.register(["a", "b", "c"].map((name, i) => newInvocation("t", [name], now + i)));
        assert.deepEqual(await claim(1), ['["a"]'], "the oldest first");
        // Behind the position: a ready time earlier than what was claimed (a host whose clock is behind).
        await backend.orchestrator.register([newInvocation("t", ["behind"], now - 1000)]);
        assert.deepEqual(await claim(1), ['["b"]'], "from where the last claim ended: what is behind it is passed over");
        assert.deepEqual(await claim(5), ['["c"]', '["behind"]'], "a claim that comes back short goes on from the head");

        const walkedWhole = Date.now();
        await backend.orchestrator.register([newInvocation("t", ["behind again"], now - 2000), newInvocation("t", ["d"], now + 5)]);
        assert.deepEqual(await claim(1), ['["d"]'], "from the position again");
        await sleep(Math.max(0, walkedWhole + wholeQueueEveryMs + 50 - Date.now()));
        assert.deepEqual(await claim(1), ['["behind again"]'], "the whole queue once the last walk of it is wholeQueueEveryMs old");
      } finally {
        await listener.close();
        await db.close();
      }
    });
  });
});

describe("postgres: what a claim hands back", () => {
  it("every claimed invocation as registered, whatever its task id, arguments and ids hold", async () => {
    await withApp("answer", async (backend) => {
      const now = Date.now();
      await backend.orchestrator.registerRunner(remoteRunner("r", now), now);
      // Spaces, colons and digits; characters of two, three and four bytes (the last two code
      // units in JavaScript, one character on the server); arguments of 24 million characters.
      const shapes: [string, unknown[]][] = [
        ["plain", [1]],
        ["with spaces: 12 3 -1 (4,5):", ["a b", "12:34", " : "]],
        ["ünïcode täsk", ["ß", "中文", "\u0000 escaped"]],
        ["clef 𝄞 task", ["🎉", "𝄞𝄞", "x🎉y:"]],
        ["no-args", []],
        ...[0, 1, 2, 3].map((n): [string, unknown[]] => ["large", [`${n}`.repeat(6_000_000)]]),
      ];
      const parent: string = randomUUID();
      const invocations: NewInvocation[] = shapes.map(([task, args], i) => ({
        ...newInvocation(task, args, now),
        parentId: i % 2 ? parent : null,
      }));
      invocations.push({ ...newInvocation("odd-id", [0], now), id: `id with spaces: 3 4 ${randomUUID()}` });
      await backend.orchestrator.register(invocations);
      const claimed = await backend.broker.claim("r", invocations.length, now, { start: true });
      const expected = invocations.map((inv) => ({
        id: inv.id,
        taskId: inv.taskId,
        args: inv.args,
        attempt: 1,
        retries: 0,
        parentId: inv.parentId,
      }));
      assert.equal(claimed.length, expected.length);
      claimed.forEach((c, n) => assert.ok(isDeepStrictEqual(c, expected[n]), `invocation ${n} (${c.taskId}) came back as registered`));
      const finals = claimed.map((c) =>
        planTransition({ id: c.id, status: STARTED_STATUS, attempt: 1, owner: "r" }, "SUCCESS", { by: "r", at: now + 1, result: "1" }),
      );
      assert.deepEqual(
        await backend.orchestrator.transition(finals),
        finals.map(() => true),
      );
    });
  });
});

describe("postgres: a worker's preparation", () => {
  it("starts the connections a worker writes on, each having run the claim and the final writes", async () => {
    await withApp("prepare", async (backend, appId) => {
      const { client, close } = await ownSession(`observer-${randomUUID()}`);
      try {
        await backend.prepareForWork();
        const { rows } = await client.query<{ n: number; idle: number }>(
          "SELECT count(*)::int AS n, count(*) FILTER (WHERE state = 'idle')::int AS idle FROM pg_stat_activity WHERE application_name = $1",
          [`nenc ${appId}`.slice(0, 63)],
        );
        assert.deepEqual(rows[0], { n: 5, idle: 5 }, "five connections, back in the pool");
        const now = Date.now();
        await backend.orchestrator.registerRunner(remoteRunner("r", now), now);
        await backend.orchestrator.register([newInvocation("t", [1], now)]);
        const [claimed] = await backend.broker.claim("r", 1, now, { start: true });
        assert.equal(claimed?.attempt, 1, "what the preparation ran changed nothing");
      } finally {
        await close();
      }
    });
  });
});

describe("postgres: query plans", () => {
  it("claims by walking the queue index in order, never a bitmap or sequential scan of the table", async () => {
    // With statistics taken while the table was small, the planner used to read and sort the
    // whole queue to take the first rows; nenc's sessions pin its statements to index paths.
    await withApp("plan", async (backend, appId) => {
      const { client, close } = await ownSession(appId);
      try {
        const now = Date.now();
        await backend.orchestrator.register(Array.from({ length: 500 }, (_, i) => newInvocation("t", [i], now)));
        const types = "text, text, bigint, integer, text[], text, text, text, text, bigint, bigint";
        await client.query(`PREPARE plan_check (${types}) AS ${CLAIM.text}`);
        const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
        const args = [
          literal(appId),
          literal("r"),
          String(now),
          "50",
          literal(`{${CLAIMABLE_STATUSES.join(",")}}`),
          literal(STARTED_STATUS),
          literal(historyHead(CLAIMED_STATUS, now)),
          literal(historyTail("r")),
          literal(historyHead(STARTED_STATUS, now)),
          String(now - 1),
          "0",
        ];
        const { rows } = await client.query<{ "QUERY PLAN": [{ Plan: PlanNode }] }>(
          `EXPLAIN (FORMAT JSON) EXECUTE plan_check(${args.join(", ")})`,
        );
        const nodes = flatten(rows[0]!["QUERY PLAN"][0].Plan);
        const onInvocations = nodes.filter((n) => n["Relation Name"] === "invocations");
        assert.deepEqual(
          onInvocations.filter((n) => /Seq Scan|Bitmap/.test(n["Node Type"])),
          [],
          "no whole-table scan of invocations",
        );
        assert.ok(
          onInvocations.some(
            (n) =>
              n["Node Type"] === "Index Scan" &&
              n["Index Name"] === "invocations_in_flight" &&
              /ROW\(ready_at, seq\) > ROW\(\$10, \$11\)/.test(n["Index Cond"] ?? ""),
          ),
          `the queue index walked in order, from the position given: ${JSON.stringify(nodes.map((n) => [n["Node Type"], n["Index Name"], n["Index Cond"]]))}`,
        );
        assert.ok(
          onInvocations.some((n) => n["Node Type"] === "Tid Scan"),
          `the update finds the picked rows by their ctid: ${JSON.stringify(nodes.map((n) => [n["Node Type"], n["Index Name"]]))}`,
        );
      } finally {
        await close();
      }
    });
  });
});

describe("postgres: query plans, whatever the statistics say", () => {
  // A queue table is often vacuumed while nearly empty, and then holds a million rows before it is
  // analyzed again: its statistics say it holds a handful of rows (0 per page) and a plan made then
  // is kept for the connection's life. A transition batch planned that way walked every invocation
  // of the app for each batch (the table as the outer side of the join, the batch as the inner).
  // Each case fakes the statistics in a transaction that is rolled back, and asks for the plan.
  const STATISTICS = [
    { what: "never vacuumed", reltuples: -1, relpages: 0 },
    { what: "vacuumed while nearly empty", reltuples: 1, relpages: 100_000 },
    { what: "vacuumed while large", reltuples: 5_000_000, relpages: 500_000 },
  ];
  const byId = (n: PlanNode) =>
    n["Node Type"] === "Tid Scan" ||
    (n["Node Type"] === "Index Scan" && n["Index Name"] === "invocations_pkey" && /\bid = /.test(n["Index Cond"] ?? ""));
  const STATEMENTS = [
    {
      what: "a transition batch in which every column varies finds its invocations by id",
      text: transitionStatement(
        transitionShape([
          "expect_status",
          "expect_attempt",
          "check_owner",
          "expect_owner",
          "to_status",
          "owner",
          "attempt",
          "ready_at",
          "at",
          "runner",
          "result",
          "error",
          "retries",
          "queued",
          "final",
        ]),
      ).text,
      reads: byId,
    },
    {
      what: "a batch of final writes (times varying) finds its invocations by id",
      text: transitionStatement(transitionShape([])).text,
      reads: byId,
    },
    { what: "a batch of log lines finds its invocations by id", text: APPEND_LOGS.text, reads: byId },
    {
      what: "a claim walks the queue index in order, then updates the rows it picked",
      text: CLAIM.text,
      reads: (n: PlanNode) =>
        n["Node Type"] === "Tid Scan" || (n["Node Type"] === "Index Scan" && n["Index Name"] === "invocations_in_flight"),
    },
  ];
  for (const { what, text, reads } of STATEMENTS) {
    it(what, async () => {
      const { client, close } = await ownSession(`plan-${randomUUID()}`);
      try {
        const parameters = Math.max(...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
        const nulls = Array.from({ length: parameters }, () => "NULL").join(", ");
        for (const statistics of STATISTICS) {
          await client.query("BEGIN");
          try {
            await client.query("UPDATE pg_class SET reltuples = $1, relpages = $2 WHERE oid = 'nenc.invocations'::regclass", [
              statistics.reltuples,
              statistics.relpages,
            ]);
            await client.query(`PREPARE under_test AS ${text}`);
            const { rows } = await client.query<{ "QUERY PLAN": [{ Plan: PlanNode }] }>(
              `EXPLAIN (FORMAT JSON) EXECUTE under_test(${nulls})`,
            );
            const nodes = flatten(rows[0]!["QUERY PLAN"][0].Plan);
            const onInvocations = nodes.filter((n) => n["Relation Name"] === "invocations" && n["Node Type"] !== "ModifyTable");
            assert.ok(onInvocations.length > 0);
            assert.deepEqual(
              onInvocations.filter((n) => !reads(n)).map((n) => [n["Node Type"], n["Index Name"], n["Index Cond"]]),
              [],
              `${statistics.what}: no other read of invocations`,
            );
          } finally {
            await client.query("ROLLBACK");
            await client.query("DEALLOCATE ALL");
          }
        }
      } finally {
        await close();
      }
    });
  }
});

describe("postgres: a transition racing another change of its invocation", () => {
  // A transition finds its invocation by id and updates the row version it found. A change another
  // session has made and not committed yet is waited for; once it commits, the request is judged
  // again against the row as that change left it, not against the version found before it.
  for (const { what, change, applies } of [
    { what: "a change that keeps what the request expects: it applies", change: "updated_at = updated_at + 1", applies: true },
    { what: "a change of status: it is refused", change: "status = 'KILLED'", applies: false },
  ]) {
    it(what, async () => {
      await withApp("race", async (backend, appId) => {
        const { client: other, close } = await ownSession(appId);
        try {
          const now = Date.now();
          await backend.orchestrator.registerRunner(remoteRunner("r", now), now);
          const invocation = newInvocation("t", [1], now);
          await backend.orchestrator.register([invocation]);
          const [claimed] = await backend.broker.claim("r", 1, now, { start: true });
          assert.ok(claimed);
          await other.query("BEGIN");
          await other.query(`UPDATE nenc.invocations SET ${change} WHERE app_id = $1 AND id = $2`, [appId, invocation.id]);
          const done = planTransition({ id: invocation.id, status: "RUNNING", attempt: 1, owner: "r" }, "SUCCESS", {
            by: "r",
            at: now + 1,
            result: "1",
          });
          const transition = backend.orchestrator.transition([done]);
          const settled = await Promise.race([transition.then(() => "settled"), sleep(300).then(() => "waiting")]);
          assert.equal(settled, "waiting", "the transition waits for the other session's change");
          await other.query("COMMIT");
          assert.deepEqual(await transition, [applies]);
          assert.equal((await backend.state.get(invocation.id))?.status, applies ? "SUCCESS" : "KILLED");
        } finally {
          await other.query("ROLLBACK").catch(() => {});
          await close();
        }
      });
    });
  }
});

describe("postgres: schema upgrades", () => {
  it("upgrades a version 2 database: the history stored before it became text is kept, and keys compare byte by byte", async () => {
    const database = `nenc_upgrade_${randomUUID().replace(/-/g, "")}`;
    const admin = await PostgresConnection.open({ url, appId: "upgrade-admin" });
    await admin.ready();
    await admin.query(`CREATE DATABASE ${database}`);
    const upgradedUrl = url.replace(/\/test$/, `/${database}`);
    try {
      // A database left at version 2 by an earlier nenc, with one invocation in it.
      const ownedUrl = upgradedUrl.replace("//", `//${process.env["PGUSER"] || userInfo().username}@`);
      const client = new pg.Client({ connectionString: ownedUrl });
      await client.connect();
      try {
        await client.query(
          "CREATE SCHEMA nenc; CREATE TABLE nenc.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        );
        for (const step of MIGRATIONS.filter((m) => m.version <= 2)) {
          await client.query(step.sql);
          await client.query("INSERT INTO nenc.migrations (version) VALUES ($1)", [step.version]);
        }
        await client.query(
          `INSERT INTO nenc.invocations (app_id, id, task_id, call_id, args, status, attempt, owner, seq, created_seq, created_at, updated_at, history)
           VALUES ('old', 'inv-1', 't', 'c', '[]', 'RUNNING', 1, 'r', 1, 1, 1000, 1002,
                   '[["REGISTERED", 1000, 0, null], ["PENDING", 1001, 1, "r"], ["RUNNING", 1002, 1, "r"]]'::jsonb)`,
        );
      } finally {
        await client.end();
      }
      const backend = await createPostgresBackend({ url: upgradedUrl, appId: "old" });
      try {
        const before = await backend.state.history("inv-1");
        assert.deepEqual(
          before.map((h) => [h.status, h.at, h.attempt, h.runnerId]),
          [
            ["REGISTERED", 1000, 0, null],
            ["PENDING", 1001, 1, "r"],
            ["RUNNING", 1002, 1, "r"],
          ],
        );
        const done = planTransition({ id: "inv-1", status: "RUNNING", attempt: 1, owner: "r" }, "SUCCESS", {
          by: "r",
          at: 1003,
          result: "1",
        });
        assert.deepEqual(await backend.orchestrator.transition([done]), [true]);
        assert.deepEqual(
          (await backend.state.history("inv-1")).map((h) => h.status),
          ["REGISTERED", "PENDING", "RUNNING", "SUCCESS"],
        );
        const upgraded = new pg.Client({ connectionString: ownedUrl });
        await upgraded.connect();
        try {
          const { rows } = await upgraded.query<{ key: string }>(
            `SELECT table_name || '.' || column_name || ' ' || coalesce(collation_name, 'default') AS key FROM information_schema.columns
             WHERE table_schema = 'nenc' AND column_name IN ('app_id', 'id', 'invocation_id', 'name') ORDER BY 1`,
          );
          assert.deepEqual(
            rows.map((r) => r.key),
            [
              "invocations.app_id C",
              "invocations.id C",
              "leases.app_id C",
              "leases.name C",
              "logs.app_id C",
              "logs.invocation_id C",
              "runners.app_id C",
              "runners.id C",
            ],
          );
        } finally {
          await upgraded.end();
        }
      } finally {
        await backend.close();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.close();
    }
  });
});

/** A backend for an app of the test's own (`prefix-<uuid>`), its rows purged and the backend closed once `use` is done. */
async function withApp(prefix: string, use: (backend: PostgresBackend, appId: string) => Promise<void>): Promise<void> {
  const appId = `${prefix}-${randomUUID()}`;
  const backend = await createPostgresBackend({ url, appId });
  try {
    await use(backend, appId);
  } finally {
    await backend.state.purge();
    await backend.close();
  }
}

/** A connection of its own with nenc's session settings (those its statements are planned under). */
async function ownSession(appId: string): Promise<{ client: pg.Client; close: () => Promise<void> }> {
  const db = await PostgresConnection.open({ url, appId });
  await db.ready();
  const client = await db.connect();
  return {
    client,
    close: async () => {
      await client.end();
      await db.close();
    },
  };
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
