import { defaultCapabilities, type Backend, type Capabilities } from "../../ports/backend.js";
import { RedisBroker } from "./redis-broker.js";
import { RedisClient } from "./redis-client.js";
import { RedisOrchestrator } from "./redis-orchestrator.js";
import { RedisState } from "./redis-state.js";

export interface RedisBackendOptions {
  readonly url: string;
  readonly appId: string;
}

/**
 * An app's data on a Redis server, under the key prefix `nenc:{<appId>}:`. Every write that touches
 * an invocation is one Lua script; reads are plain commands. One connection for commands, plus one
 * for pub/sub once somebody subscribes.
 */
export class RedisBackend implements Backend {
  readonly kind = "redis";
  /**
   * A register batch is one script, and Redis runs nothing else while a script runs: 1,000 at once
   * held it for about 25 ms, 100 for a tenth of that. Claims are scripts too: in claims of up to
   * 125 instead of the default 250 a worker drained 5-10% faster, with less CPU of its own per job
   * (`npm run bench:drain -- nenc-redis`, runs in turn: median 43.9k/s against 40.0k in a scratch
   * build, 41.0k and 41.5k against 38.5k and 39.7k as committed; 19-22 µs against 21-24;
   * BENCHMARKS.md), while more batches ahead or larger claims made it slower.
   */
  readonly capabilities: Capabilities = { ...defaultCapabilities, registerBatchSize: 100, claimAhead: { batches: 10, claimSize: 125 } };
  readonly orchestrator: RedisOrchestrator;
  readonly broker: RedisBroker;
  readonly state: RedisState;
  readonly #client: RedisClient;

  constructor(options: RedisBackendOptions) {
    this.#client = new RedisClient(options.url, options.appId);
    this.orchestrator = new RedisOrchestrator(this.#client);
    this.broker = new RedisBroker(this.#client);
    this.state = new RedisState(this.#client);
  }

  async close(): Promise<void> {
    this.broker.close();
    await this.#client.close();
  }
}

export function createRedisBackend(options: RedisBackendOptions): RedisBackend {
  return new RedisBackend(options);
}
