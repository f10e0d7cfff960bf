import type { AppConfig } from "../core/config.js";
import { sqlitePathOf } from "../runtime/backends.js";

/** Where an app's data lives, for humans: "sqlite /path/app.sqlite", "redis redis://...". */
export function describeBackend(config: AppConfig): string {
  switch (config.backend) {
    case "sqlite":
      return `sqlite ${sqlitePathOf(config)}`;
    case "redis":
      return `redis ${config.redisUrl}`;
    case "postgres":
      return `postgres ${redactUrl(config.postgresUrl)}`;
    default:
      return config.backend;
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}
