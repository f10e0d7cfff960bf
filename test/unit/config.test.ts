import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readConfigFile, resolveAppConfig, screamingSnake } from "../../src/core/config.js";
import { ConfigError } from "../../src/core/errors.js";
import { Nenc } from "../../src/runtime/app.js";

const file = (values: Record<string, unknown>) => ({ path: "/app/nenc.config.json", values });

describe("config", () => {
  it("names env vars NENC_ + SCREAMING_SNAKE_CASE", () => {
    assert.equal(screamingSnake("runnerDeadAfterMs"), "RUNNER_DEAD_AFTER_MS");
    assert.equal(screamingSnake("slowTask"), "SLOW_TASK");
  });

  it("layers defaults < file < code < env and says where each value came from", () => {
    const resolved = resolveAppConfig({
      file: file({ runnerDeadAfterMs: 5000, heartbeatIntervalMs: 700, concurrency: 3 }),
      code: { runnerDeadAfterMs: 4000, concurrency: 4 },
      env: { NENC_RUNNER_DEAD_AFTER_MS: "3000" },
    });
    assert.equal(resolved.values.runnerDeadAfterMs, 3000);
    assert.equal(resolved.sources.runnerDeadAfterMs, "env NENC_RUNNER_DEAD_AFTER_MS");
    assert.equal(resolved.values.concurrency, 4);
    assert.equal(resolved.sources.concurrency, "code");
    assert.equal(resolved.values.heartbeatIntervalMs, 700);
    assert.equal(resolved.sources.heartbeatIntervalMs, "/app/nenc.config.json");
    assert.equal(resolved.values.recoveryIntervalMs, 750);
    assert.equal(resolved.sources.recoveryIntervalMs, "default");
  });

  it("leaves parallelBatchSize to the backend unless it is set, and checks it when it is", () => {
    assert.equal(resolveAppConfig({ file: null, env: {} }).values.parallelBatchSize, null);
    assert.equal(resolveAppConfig({ file: null, env: { NENC_PARALLEL_BATCH_SIZE: "250" } }).values.parallelBatchSize, 250);
    assert.throws(
      () => resolveAppConfig({ file: null, env: { NENC_PARALLEL_BATCH_SIZE: "0" } }),
      (error: unknown) => error instanceof ConfigError && error.key === "parallelBatchSize",
    );
  });

  it("names the key and the source of a bad value", () => {
    assert.throws(
      () => resolveAppConfig({ file: null, env: { NENC_RUNNER_DEAD_AFTER_MS: "soon" } }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.key, "runnerDeadAfterMs");
        assert.equal(error.source, "env NENC_RUNNER_DEAD_AFTER_MS");
        assert.match(error.message, /expected a whole number, got "soon"/);
        return true;
      },
    );
    assert.throws(
      () => resolveAppConfig({ file: file({ backend: "mongo" }) }),
      /config backend \(from \/app\/nenc.config.json\): expected one of sqlite, memory, redis, postgres/,
    );
    assert.throws(
      () => resolveAppConfig({ file: null, code: { runerDeadAfterMs: 1 } }),
      /config runerDeadAfterMs \(from code\): unknown key/,
    );
  });

  it("checks the capabilities of a backend it is given, naming what is missing", async () => {
    const { createMemoryBackend } = await import("../../src/backends/memory/memory-backend.js");
    const sound = createMemoryBackend();
    await new Nenc({ backend: sound, configFile: null }).close();
    // A backend written against an older interface: no claimAhead, and a batch size of zero.
    const older = Object.assign(createMemoryBackend(), { capabilities: { sharedAcrossProcesses: false, registerBatchSize: 0 } });
    assert.throws(
      () => new Nenc({ backend: older as never, configFile: null }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.key, "backend");
        assert.match(error.message, /capabilities\.registerBatchSize: expected a whole number from 1/);
        assert.match(error.message, /capabilities\.claimAhead: expected \{ batches, claimSize \}/);
        assert.doesNotMatch(error.message, /sharedAcrossProcesses/);
        return true;
      },
    );
  });

  it('reads nenc.config.json, else package.json "nenc"', () => {
    const dir = mkdtempSync(join(tmpdir(), "nenc-config-"));
    assert.equal(readConfigFile(dir), null);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "x", nenc: { appId: "from-pkg" } }));
    assert.deepEqual(readConfigFile(dir)?.values, { appId: "from-pkg" });
    writeFileSync(join(dir, "nenc.config.json"), JSON.stringify({ appId: "from-file" }));
    assert.deepEqual(readConfigFile(dir)?.values, { appId: "from-file" });
    writeFileSync(join(dir, "nenc.config.json"), "{ broken");
    assert.throws(() => readConfigFile(dir), /not valid JSON/);
  });

  it("resolves task options: app < task code < file tasks.<name> < NENC_TASK__<NAME>__<KEY>", () => {
    const app = new Nenc({
      backend: "memory",
      maxRetries: 1,
      configFile: file({ tasks: { slowTask: { retryBackoffMs: 10, maxRetries: 2 } } }),
      env: { NENC_TASK__SLOW_TASK__MAX_RETRIES: "7" },
    });
    const slow = app.task("slowTask", async () => 1, { maxRetries: 3, retryJitter: 0 });
    const other = app.task("other", async () => 1);
    assert.equal(slow.config.maxRetries, 7);
    assert.equal(slow.config.retryBackoffMs, 10);
    assert.equal(slow.config.retryJitter, 0);
    assert.equal(other.config.maxRetries, 1);
    const sources = app.resolveTaskConfigWithSources("slowTask").sources;
    assert.equal(sources.maxRetries, "env NENC_TASK__SLOW_TASK__MAX_RETRIES");
    assert.equal(sources.retryBackoffMs, "/app/nenc.config.json tasks.slowTask");
    assert.throws(
      () => new Nenc({ backend: "memory", configFile: null, env: { NENC_TASK__T__MAX_RETRIES: "-1" } }).task("t", async () => 1),
      /config maxRetries \(from env NENC_TASK__T__MAX_RETRIES\)/,
    );
  });
});
