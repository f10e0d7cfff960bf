import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { describe, it } from "node:test";
import pg from "pg";
import { createPostgresBackend } from "../../src/backends/postgres/postgres-backend.js";
import { arrayLiteral } from "../../src/backends/postgres/postgres-arrays.js";
import { CLAIM } from "../../src/backends/postgres/postgres-broker.js";
import { PostgresConnection } from "../../src/backends/postgres/postgres-connection.js";
import { MIGRATIONS } from "../../src/backends/postgres/postgres-migrations.js";
import { historyEntryElement, historyHead, historyTail } from "../../src/backends/postgres/postgres-history.js";
import { CLAIMABLE_STATUSES, CLAIMED_STATUS, STARTED_STATUS } from "../../src/core/status.js";
import { planTransition } from "../../src/core/transition.js";
import { runConformance } from "../conformance/suite.js";
import { newInvocation, purgeApps, remoteRunner } from "../conformance/harness.js";

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
    const db = await PostgresConnection.open({ url, appId: "arrays" });
    await db.ready();
    try {
      const runners = ["vm-1-abc", 'a "quoted" one', "back\\slash", "ünïcødé ✓", null];
      const elements = runners.map((runner, i) => historyEntryElement("SUCCESS", 1764352800123 + i, i, runner));
      const [row] = await db.query<{ entries: string[] }>("SELECT $1::text[] AS entries", [`{${elements.join(",")}}`]);
      assert.deepEqual(
        row?.entries.map((entry) => JSON.parse(entry.slice(1)) as unknown),
        runners.map((runner, i) => ["SUCCESS", 1764352800123 + i, i, runner]),
      );
      assert.ok(row?.entries.every((entry) => entry.startsWith(",[")));
    } finally {
      await db.close();
    }
  });
});

describe("postgres: query plans", () => {
  it("claims by walking the queue index in order, never a bitmap or sequential scan of the table", async () => {
    // With statistics taken while the table was small, the planner used to read and sort the
    // whole queue to take the first rows; nenc's sessions pin its statements to index paths.
    const appId = `plan-${randomUUID()}`;
    const backend = await createPostgresBackend({ url, appId });
    const db = await PostgresConnection.open({ url, appId });
    await db.ready();
    const client = await db.connect();
    try {
      const now = Date.now();
      await backend.orchestrator.register(Array.from({ length: 500 }, (_, i) => newInvocation("t", [i], now)));
      const types = "text, text, bigint, integer, text[], text, text, text, text";
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
        onInvocations.some((n) => n["Node Type"] === "Index Scan" && n["Index Name"] === "invocations_in_flight"),
        `the queue index walked in order: ${JSON.stringify(nodes.map((n) => [n["Node Type"], n["Index Name"]]))}`,
      );
      assert.ok(
        onInvocations.some((n) => n["Node Type"] === "Tid Scan"),
        `the update finds the picked rows by their ctid: ${JSON.stringify(nodes.map((n) => [n["Node Type"], n["Index Name"]]))}`,
      );
    } finally {
      await client.end();
      await backend.state.purge();
      await db.close();
      await backend.close();
    }
  });
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

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
