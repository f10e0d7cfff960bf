import { defaultCapabilities, type Backend, type Capabilities } from "../../ports/backend.js";
import { PostgresBroker } from "./postgres-broker.js";
import { PostgresConnection } from "./postgres-connection.js";
import { PostgresListener } from "./postgres-listener.js";
import { PostgresOrchestrator } from "./postgres-orchestrator.js";
import { PostgresSession } from "./postgres-session.js";
import { PostgresState } from "./postgres-state.js";

export interface PostgresBackendOptions {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  readonly appId: string;
  /** The runners' heartbeat interval: after a server restart, live runners take their locks again within it. */
  readonly heartbeatIntervalMs?: number;
  /** Pool size for ordinary statements (default 10). */
  readonly poolSize?: number;
}

/**
 * Invocations in PostgreSQL, shared by every process and host pointed at the same server.
 *
 * - Schema: the tables live in the schema `nenc`, created and upgraded on first use by numbered
 *   migrations (postgres-migrations.ts); every row carries its app's id, so apps never see each
 *   other's data and purge removes one app's rows only.
 * - Atomicity: every write is one statement (a claim, a batch of compare-and-sets, a fenced log
 *   append) or, for a batch that chains steps on one invocation, one transaction. Nothing is read
 *   by the client to decide a write.
 * - Durability: every statement commits synchronously, as the server is configured. Relaxing it
 *   for claims or intermediate statuses would make a server crash undo a claim that a live runner
 *   already acted on, leaving the invocation owned by a runner that no longer runs it.
 * - Wake-ups: LISTEN/NOTIFY on one channel per app (postgres-listener.ts); writes that add work or
 *   record an outcome notify once they have committed (PostgresConnection.wake).
 * - Death: a runner's process holds a session advisory lock on its connection; when the process
 *   dies the server drops the lock with the connection, and connectedRunners() tells recovery at
 *   once (postgres-session.ts). For a few seconds after a server start it answers null, while live
 *   runners take their locks again.
 * - Faults: pooled connections reconnect per query, LISTEN reconnects by itself; while the server is
 *   unreachable calls reject with PostgresUnreachableError, naming the server.
 */
export class PostgresBackend implements Backend {
  readonly kind = "postgres";
  /**
   * A worker claims further ahead here, in larger claims: each statement is a round trip and a
   * commit (its WAL flush) whatever its size. Twenty batches in claims of up to 500 against the
   * default ten in claims of 250: commits per 10,000 no-ops drained 147-162 -> 96-97 (pg_waldump);
   * bench:peers' nenc-postgres alone, in three sets of ABBA pairs (8, 8, 8), drained 1.13x, 1.14x
   * and 1.25x and overlapped 1.10x, 1.00x and 1.09x (medians). Both halves count: with twenty
   * batches, claims of up to 500 against 250 drained 1.03x and overlapped 1.11x (six pairs). On
   * Redis the same made no difference (six pairs: 1.005x, 0.98x), and on SQLite it was slower
   * (npm run bench, two runs each: draining 33-36k/s against 37-42k, overlapping 22-25k against
   * 27-30k), so neither takes it (Redis later took smaller claims: redis-backend.ts).
   */
  readonly capabilities: Capabilities = { ...defaultCapabilities, claimAhead: { batches: 20, claimSize: 500 } };
  readonly orchestrator: PostgresOrchestrator;
  readonly broker: PostgresBroker;
  readonly state: PostgresState;
  readonly #connection: PostgresConnection;
  readonly #listener: PostgresListener;
  readonly #session: PostgresSession;

  constructor(connection: PostgresConnection, options: PostgresBackendOptions) {
    this.#connection = connection;
    this.#listener = new PostgresListener(connection);
    this.#session = new PostgresSession(connection);
    // Long enough for every live runner to beat (and so lock) again after a server restart.
    const graceMs = Math.max(5000, 3 * (options.heartbeatIntervalMs ?? 1000));
    this.orchestrator = new PostgresOrchestrator(connection, this.#session, graceMs);
    this.broker = new PostgresBroker(connection, this.#listener);
    this.state = new PostgresState(connection);
  }

  /**
   * A worker keeps up to two claims, two write batches and a wake-up in flight: five connections,
   * each started and planning the claim and the final writes now rather than during the first
   * work (a server process's first statements load its caches and plan them: in the first 100 ms
   * of a drain that was a quarter of the server's time).
   */
  async prepareForWork(): Promise<void> {
    await this.#connection.warm(5, [this.broker.idleClaim(), this.orchestrator.idleFinalWrites()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.#listener.close(), this.#session.close()]);
    await this.#connection.close();
  }
}

export async function createPostgresBackend(options: PostgresBackendOptions): Promise<PostgresBackend> {
  const connection = await PostgresConnection.open(options);
  return new PostgresBackend(connection, options);
}
