import { createHash } from "node:crypto";
import { userInfo } from "node:os";
import type { Client, ClientConfig, CustomTypesConfig, Pool, PoolClient, QueryConfig, QueryResultRow } from "pg";
import { NencError } from "../../core/errors.js";
import { migrate } from "./postgres-migrations.js";

type Driver = (typeof import("pg"))["default"];

/** A query the server may keep a plan of: `name` makes it a prepared statement per connection. */
export type Statement = string | { readonly name: string; readonly text: string };

/** Runs one statement and returns its rows: on the pool (a transaction of its own) or inside a transaction. */
export type Query = <R extends QueryResultRow>(statement: Statement, values?: unknown[]) => Promise<R[]>;

/** PostgreSQL cannot be reached (down, restarting, refusing connections, the link dropped). */
export class PostgresUnreachableError extends NencError {
  override name = "PostgresUnreachableError";
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  // admin_shutdown, crash_shutdown, cannot_connect_now, and the connection_exception class
  "57P01",
  "57P02",
  "57P03",
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);
const CONNECTION_MESSAGES =
  /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Client was closed/i;
/**
 * Every statement of nenc's is planned once per connection and reused: the hot ones are prepared
 * statements whose best plan does not depend on their parameters (index lookups by id, the queue
 * index in order), and planning an UPDATE over a dozen unnest()ed arrays costs more than running it.
 * Every statement is a keyed lookup or an ordered walk of an index, so the access paths are pinned
 * to indexes (no bitmap or sequential scans): a queue table goes from empty to a million rows and
 * back in minutes, its statistics are always stale, and a generic plan made from statistics taken
 * while it was small keeps its choice for the connection's life. Measured before this: claims
 * that read and sorted the whole queue to take the first 50 (a bitmap scan), and transition
 * batches that scanned the whole table (a sequential scan), each growing with the table. The join
 * order is pinned too, where a batch meets the table: the batch's rows are the outer side of a
 * LATERAL lookup by id (see transitionStatement and APPEND_LOGS), never the inner side of a walk
 * over the app.
 */
const SESSION_SETTINGS = "-c plan_cache_mode=force_generic_plan -c enable_bitmapscan=off -c enable_seqscan=off";

const NOTIFY = { name: "nenc_notify", text: "SELECT pg_notify($1, '')" };

/**
 * Errors after which nothing was applied, so the statement can simply run again: deadlock_detected,
 * serialization_failure, and a session the server ended (admin_shutdown, crash_shutdown: the
 * transaction was rolled back, or the statement never ran on a pooled connection the server had
 * already closed). A statement cut off by a lost connection is not retried: it may have committed.
 */
const RETRY_CODES = new Set(["40P01", "40001", "57P01", "57P02"]);

function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  if (error instanceof AggregateError) return error.errors.some(isConnectionError);
  return CONNECTION_MESSAGES.test(error.message);
}

/** The URL without its password, fit for an error message. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** 64-bit key of a session advisory lock, from text; the same in every process. */
export function lockKey(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest().readBigInt64BE(0).toString();
}

export interface PostgresConnectionOptions {
  readonly url: string;
  readonly appId: string;
  /** Pool size for ordinary statements (default 10). */
  readonly poolSize?: number;
}

/**
 * What the PostgreSQL backend's parts share: the driver (loaded here, on first use, so that no
 * other backend loads it), a pool for ordinary statements, the schema's migrations, and the
 * translation of driver errors into errors a user can act on. The pool opens a connection per
 * query as needed, so after a server restart the next query simply reconnects.
 */
export class PostgresConnection {
  readonly url: string;
  readonly appId: string;
  /** The NOTIFY channel of this app: every process of the app listens on it. */
  readonly channel: string;
  readonly driver: Driver;
  readonly #pool: Pool;
  readonly #config: ClientConfig;
  #ready: Promise<void> | undefined;
  #closed = false;
  #waking = false;
  #wakeAgain = false;

  private constructor(driver: Driver, options: PostgresConnectionOptions) {
    this.driver = driver;
    this.url = options.url;
    this.appId = options.appId;
    this.channel = `nenc_${createHash("sha256").update(options.appId).digest("hex").slice(0, 24)}`;
    this.#config = {
      connectionString: withUser(options.url),
      types: numericBigints(driver),
      application_name: `nenc ${options.appId}`.slice(0, 63),
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
      options: SESSION_SETTINGS,
    };
    this.#pool = new driver.Pool({ ...this.#config, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000, allowExitOnIdle: true });
    // An idle pooled connection that the server closes (restart, admin) is dropped by the pool;
    // the next query opens a new one. Without a listener the error would end the process.
    this.#pool.on("error", () => {});
  }

  static async open(options: PostgresConnectionOptions): Promise<PostgresConnection> {
    const driver = (await import("pg")).default;
    return new PostgresConnection(driver, options);
  }

  /** Run one statement (its own transaction) and return its rows. */
  async query<R extends QueryResultRow>(statement: Statement, values: unknown[] = []): Promise<R[]> {
    await this.ready();
    return this.#retrying(() => this.#pool.query<R>(toConfig(statement, values))).then((result) => result.rows);
  }

  /**
   * NOTIFY the app's listeners, once a write that calls for it has committed, as a statement of its
   * own. Inside the writing transaction, a NOTIFY takes PostgreSQL's database-wide notify lock at
   * commit and holds it through the commit's WAL flush: every notifying write in the database then
   * commits one at a time (in a drain, finishing batches spent a fifth of their time waiting for
   * that lock). Alone it writes no WAL and holds the lock for a moment. One is in flight at a time;
   * calls meanwhile fold into one more after it, so the last write is always followed by one. A
   * wake-up is a hint: one lost (the process died after its commit, the server is away) delays
   * listeners until their poll timer, never loses data.
   */
  wake(): void {
    if (this.#waking) {
      this.#wakeAgain = true;
      return;
    }
    this.#waking = true;
    this.query(NOTIFY, [this.channel])
      .catch(() => undefined)
      .finally(() => {
        this.#waking = false;
        if (this.#wakeAgain && !this.#closed) {
          this.#wakeAgain = false;
          this.wake();
        }
      });
  }

  /** Run `body` in one transaction on one pooled connection; rolled back if it throws. */
  async transaction<T>(body: (query: Query) => Promise<T>): Promise<T> {
    await this.ready();
    return this.#retrying(async () => {
      const client = await this.#pool.connect();
      let broken = false;
      try {
        await client.query("BEGIN");
        const result = await body(
          async <R extends QueryResultRow>(statement: Statement, values: unknown[] = []) =>
            (await client.query<R>(toConfig(statement, values))).rows,
        );
        await client.query("COMMIT");
        return result;
      } catch (error) {
        broken = isConnectionError(error);
        if (!broken) await client.query("ROLLBACK").catch(() => (broken = true));
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }

  /** A connection of its own, outside the pool (for LISTEN and session locks). */
  async connect(): Promise<Client> {
    const client = new this.driver.Client(this.#config);
    client.on("error", () => {});
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => {});
      throw this.translate(error);
    }
    return client;
  }

  /**
   * Open `connections` pooled connections at once and run each statement on each, so that the
   * server processes behind them are started and have planned those statements before they are
   * needed.
   */
  async warm(connections: number, statements: readonly { statement: Statement; values: unknown[] }[]): Promise<void> {
    await this.ready();
    await this.#retrying(async () => {
      // Every connection that opened goes back to the pool, even when another failed to open.
      const opened = await Promise.allSettled(
        Array.from({ length: Math.min(connections, this.#pool.options.max ?? connections) }, () => this.#pool.connect()),
      );
      const failed = opened.find((result) => result.status === "rejected");
      await Promise.all(
        opened.map(async (result) => {
          if (result.status === "rejected") return;
          const client = result.value;
          let broken = false;
          try {
            if (!failed) for (const { statement, values } of statements) await client.query(toConfig(statement, values));
          } catch (error) {
            broken = isConnectionError(error);
            throw error;
          } finally {
            client.release(broken);
          }
        }),
      );
      if (failed) throw failed.reason;
    });
  }

  /** The schema is migrated before the first statement; a failed attempt is retried next time. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new NencError(`the PostgreSQL backend for app ${this.appId} is closed`));
    this.#ready ??= this.#migrate().catch((error: unknown) => {
      this.#ready = undefined;
      throw this.translate(error);
    });
    return this.#ready;
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await migrate(client);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** A driver error as a user should see it: a clear NencError when the server cannot be reached. */
  translate(error: unknown): unknown {
    if (error instanceof NencError || !isConnectionError(error)) return error;
    const detail = error instanceof AggregateError ? error.errors.map((e: Error) => e.message).join("; ") : (error as Error).message;
    return new PostgresUnreachableError(
      `PostgreSQL at ${redactUrl(this.url)} is unreachable: ${detail || (error as { code?: string }).code}`,
      { cause: error },
    );
  }

  async #retrying<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt < 5 && typeof code === "string" && RETRY_CODES.has(code)) continue;
        throw this.translate(error);
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end().catch(() => {});
  }
}

/** Like libpq, log in as PGUSER or the OS user when the URL names nobody (the driver would send no name). */
function withUser(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username || !/^postgres(ql)?:$/.test(parsed.protocol)) return url;
    parsed.username = encodeURIComponent(process.env["PGUSER"] || userInfo().username); // throws without a passwd entry
    return parsed.toString();
  } catch {
    return url;
  }
}

function toConfig(statement: Statement, values: unknown[]): QueryConfig {
  return typeof statement === "string" ? { text: statement, values } : { name: statement.name, text: statement.text, values };
}

/** bigint columns (epoch milliseconds, counts) as numbers: every value we store fits a double exactly. */
function numericBigints(driver: Driver): CustomTypesConfig {
  const INT8 = 20;
  return {
    getTypeParser: ((oid: number, format?: "text" | "binary") =>
      oid === INT8
        ? (value: string) => Number(value)
        : (driver.types.getTypeParser(oid, format) as (value: string) => unknown)) as CustomTypesConfig["getTypeParser"],
  };
}

export type { PoolClient };
