import { createBullmqSystem } from "./bullmq.js";
import { createGraphileSystem } from "./graphile.js";
import { createNencSystem } from "./nenc.js";
import { createPgbossSystem } from "./pgboss.js";
import type { BenchSystem, RunSettings } from "./system.js";

/** Every system the benches know, by name. */
export const ALL = ["bullmq", "nenc-redis", "graphile", "graphile-batched", "pgboss", "nenc-postgres"] as const;
export type SystemName = (typeof ALL)[number];

export function isSystemName(name: string): name is SystemName {
  return (ALL as readonly string[]).includes(name);
}

export function createSystem(name: SystemName, run: RunSettings): BenchSystem {
  switch (name) {
    case "bullmq":
      return createBullmqSystem(run);
    case "graphile":
      return createGraphileSystem(run, "default");
    case "graphile-batched":
      return createGraphileSystem(run, "batched");
    case "pgboss":
      return createPgbossSystem(run);
    case "nenc-redis":
      return createNencSystem(run, "redis");
    case "nenc-postgres":
      return createNencSystem(run, "postgres");
  }
}
