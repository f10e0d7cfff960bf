#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner (through tsx), or the files given.
// NENC_TEST_BACKENDS=memory,sqlite limits which backend suites run (default: all).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return find(path);
    return name.endsWith(".test.ts") ? [path] : [];
  });
}

const files = process.argv.slice(2).length ? process.argv.slice(2) : find("test").sort();
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=600000", ...files], {
  stdio: "inherit",
  env: { ...process.env, NENC_LOG_TO_CONSOLE: process.env.NENC_LOG_TO_CONSOLE ?? "false" },
});
process.exit(result.status ?? 1);
