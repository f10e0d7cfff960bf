import { resolve } from "node:path";
import { NencError } from "../../core/errors.js";
import { defaultCapabilities, type Backend, type Capabilities } from "../../ports/backend.js";
import { SqliteBroker } from "./sqlite-broker.js";
import { SqliteCheckpointer } from "./sqlite-checkpointer.js";
import { SqliteLocking } from "./sqlite-locking.js";
import { SqliteNotifier } from "./sqlite-notifier.js";
import { SqliteOrchestrator } from "./sqlite-orchestrator.js";
import { SqliteRowIds } from "./sqlite-row-ids.js";
import { reportOnce, type CorruptRowHandler } from "./sqlite-rows.js";
import { openDatabase, SCHEMA_VERSION, type SqliteDatabase } from "./sqlite-schema.js";
import { SqliteState } from "./sqlite-state.js";

export { CorruptRecordError } from "./sqlite-rows.js";

export interface SqliteBackendOptions {
  /** The app's database file (created with its directory when missing), or ":memory:". */
  readonly path: string;
  /** The app the file belongs to: a file of another app is refused. */
  readonly appId: string;
  /** Told of rows left out of a listing because they cannot be read (default: a process warning). */
  readonly onCorruptRow?: CorruptRowHandler;
}

/**
 * One SQLite file per app, shared by every worker and client process on this host. Each process
 * holds one connection; every write is one IMMEDIATE transaction, so writers take turns on
 * SQLite's lock (see SqliteLocking) and readers never wait, thanks to WAL.
 */
export class SqliteBackend implements Backend {
  readonly kind = "sqlite";
  readonly capabilities: Capabilities;
  readonly orchestrator: SqliteOrchestrator;
  readonly broker: SqliteBroker;
  readonly state: SqliteState;
  readonly path: string;
  readonly #db: SqliteDatabase;
  readonly #notifier: SqliteNotifier;
  readonly #checkpointer: SqliteCheckpointer;
  readonly #locking!: SqliteLocking;

  constructor(options: SqliteBackendOptions) {
    const inMemory = options.path === ":memory:";
    this.path = inMemory ? options.path : resolve(options.path);
    this.capabilities = { ...defaultCapabilities, sharedAcrossProcesses: !inMemory };
    this.#db = openDatabase({ path: this.path, appId: options.appId });
    const notifier = new SqliteNotifier(inMemory ? null : this.path);
    const checkpointer = new SqliteCheckpointer(this.#db, inMemory ? null : this.path);
    this.#notifier = notifier;
    this.#checkpointer = checkpointer;
    const afterCommit = (invocationsChanged: boolean) => {
      checkpointer.touch();
      if (invocationsChanged) notifier.changed();
    };
    const onCorrupt = reportOnce(options.onCorruptRow ?? ((error) => process.emitWarning(error)));
    try {
      const locking = new SqliteLocking(this.#db);
      this.#locking = locking;
      const rowIds = new SqliteRowIds();
      this.orchestrator = new SqliteOrchestrator(this.#db, locking, rowIds, afterCommit, onCorrupt);
      this.broker = new SqliteBroker(this.#db, locking, rowIds, afterCommit, (listener) => notifier.subscribe(listener));
      this.state = new SqliteState(this.#db, locking, rowIds, afterCommit, onCorrupt);
    } catch (error) {
      // Statements are prepared here: one that does not compile means tables unlike the schema's.
      this.#db.close();
      throw new NencError(
        `${this.path} does not have the tables of nenc schema version ${SCHEMA_VERSION} although it says so ` +
          `(${(error as Error).message}); it may come from a development build of nenc: move it away to start afresh`,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    this.#notifier.close();
    await this.#checkpointer.close();
    if (this.#db.open) {
      this.#locking.endRead();
      this.#db.close();
    }
  }
}

export function createSqliteBackend(options: SqliteBackendOptions): SqliteBackend {
  return new SqliteBackend(options);
}
