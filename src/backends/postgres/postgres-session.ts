import type { Client, QueryResultRow } from "pg";
import { lockKey, type PostgresConnection, type Statement } from "./postgres-connection.js";

/**
 * The connection a runner's heartbeat uses, holding one session advisory lock per runner that
 * beats through it. The lock lives exactly as long as this connection: when the process dies,
 * the server drops the connection and the lock with it, which any other process can see in
 * pg_locks at once. A SIGSTOPped process keeps its connection, and so its lock: for that, the
 * heartbeat timeout still applies.
 *
 * If the connection drops while the process lives (server restart), the next beat opens a new one
 * and takes the locks again.
 */
export class PostgresSession {
  readonly #connection: PostgresConnection;
  #client: Promise<Client> | undefined;
  /** Runners whose lock this connection holds. */
  readonly #held = new Set<string>();
  readonly #holding = new Map<string, Promise<boolean>>();
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(connection: PostgresConnection) {
    this.#connection = connection;
  }

  /** The key of a runner's lock, the same in every process of the app. */
  keyOf(runnerId: string): string {
    return lockKey("nenc runner", this.#connection.appId, runnerId);
  }

  /** Take the runner's lock unless this connection has it already; false if another session holds it. */
  hold(runnerId: string): Promise<boolean> {
    if (this.#held.has(runnerId)) return Promise.resolve(true);
    let holding = this.#holding.get(runnerId);
    if (!holding) {
      holding = this.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [this.keyOf(runnerId)])
        .then(([row]) => {
          if (row?.locked) this.#held.add(runnerId);
          return row?.locked === true;
        })
        .finally(() => this.#holding.delete(runnerId));
      this.#holding.set(runnerId, holding);
    }
    return holding;
  }

  async release(runnerId: string): Promise<void> {
    if (!this.#held.delete(runnerId)) return;
    await this.query("SELECT pg_advisory_unlock($1)", [this.keyOf(runnerId)]);
  }

  /** One statement at a time on the connection (heartbeats and registrations may overlap). */
  query<R extends QueryResultRow>(statement: Statement, values: unknown[] = []): Promise<R[]> {
    const run = this.#queue.then(() => this.#query<R>(statement, values));
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #query<R extends QueryResultRow>(statement: Statement, values: unknown[]): Promise<R[]> {
    await this.#connection.ready();
    const client = await this.#open();
    try {
      const config = typeof statement === "string" ? { text: statement, values } : { ...statement, values };
      return (await client.query<R>(config)).rows;
    } catch (error) {
      const translated = this.#connection.translate(error);
      if (translated !== error) this.#drop(client);
      throw translated;
    }
  }

  #open(): Promise<Client> {
    if (this.#closed) return Promise.reject(new Error("the PostgreSQL backend is closed"));
    this.#client ??= this.#connection.connect().then(
      (client) => {
        client.on("error", () => this.#drop(client));
        client.on("end", () => this.#drop(client));
        return client;
      },
      (error: unknown) => {
        this.#client = undefined;
        throw error;
      },
    );
    return this.#client;
  }

  #drop(client: Client): void {
    void this.#client?.then(
      (current) => {
        if (current !== client) return;
        this.#client = undefined;
        this.#held.clear();
        void client.end().catch(() => {});
      },
      () => {},
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = await this.#client?.catch(() => undefined);
    this.#client = undefined;
    this.#held.clear();
    await client?.end().catch(() => {});
  }
}
