import { join } from "node:path";
import type { AppConfig } from "../core/config.js";
import type { Backend } from "../ports/backend.js";

/** Build the configured backend. Each driver is imported only when its backend is chosen. */
export async function createBackend(config: AppConfig): Promise<Backend> {
  switch (config.backend) {
    case "memory": {
      const { createMemoryBackend } = await import("../backends/memory/memory-backend.js");
      return createMemoryBackend();
    }
    case "sqlite": {
      const { createSqliteBackend } = await import("../backends/sqlite/sqlite-backend.js");
      return createSqliteBackend({ path: sqlitePathOf(config), appId: config.appId });
    }
    case "postgres": {
      const { createPostgresBackend } = await import("../backends/postgres/postgres-backend.js");
      return createPostgresBackend({ url: config.postgresUrl, appId: config.appId, heartbeatIntervalMs: config.heartbeatIntervalMs });
    }
    case "redis": {
      const { createRedisBackend } = await import("../backends/redis/redis-backend.js");
      return createRedisBackend({ url: config.redisUrl, appId: config.appId });
    }
    default:
      throw new Error(`backend ${String(config.backend)} is not available in this build of nenc`);
  }
}

export function sqlitePathOf(config: AppConfig): string {
  return config.sqlitePath ?? join(process.cwd(), ".nenc", `${config.appId}.sqlite`);
}
