import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { NencError } from "../../core/errors.js";
import { CLAIMABLE_STATUSES, STATUSES, STATUS_TABLE, type Status } from "../../core/status.js";

export type SqliteDatabase = Database.Database;

/** Called after each committed write; `invocationsChanged` when listeners should look again. */
export type AfterCommit = (invocationsChanged: boolean) => void;

/** The schema this build writes; a file written by a newer one is refused rather than misread. */
export const SCHEMA_VERSION = 1;

const BUSY_TIMEOUT_MS = 10_000;

/**
 * `(status = 'A' OR status = 'B')`: statuses come from core and are plain identifiers. Written as
 * ORs, not IN: SQLite builds a lookup table for each evaluation of an IN list longer than two,
 * which made every status write pay for the partial index's condition.
 */
export function statusIsOneOf(statuses: readonly Status[]): string {
  if (statuses.length === 0) return "0";
  return `(${statuses.map((s) => `status = '${s.replaceAll("'", "''")}'`).join(" OR ")})`;
}

/** Claimable statuses, from core: the claim and the queue length check them. */
export const IS_CLAIMABLE = statusIsOneOf(CLAIMABLE_STATUSES);

/**
 * Statuses that are neither claimable nor final: the ones recovery scans. A partial index keeps
 * them (a few rows at any time) so a recovery pass never scans the whole table.
 */
export const ACTIVE_STATUSES: readonly Status[] = STATUSES.filter((s) => !STATUS_TABLE[s].claimable && !STATUS_TABLE[s].final);
export const IS_ACTIVE = statusIsOneOf(ACTIVE_STATUSES);

/** Indexes whose definition is derived from the status table: rebuilt on open when core changed. */
const DERIVED_INDEXES: Readonly<Record<string, string>> = {
  invocations_active: `CREATE INDEX invocations_active ON invocations(status, updated_at) WHERE ${IS_ACTIVE}`,
};

/**
 * Each entry moves the schema from version i to i + 1.
 *
 * History is written by a trigger, so no write path can forget it: every update that sets a
 * status adds (status, updated_at, attempt, the runner that made it), keyed by the invocation's
 * `changes` counter. The first entry (REGISTERED, at created_at, attempt 0, no runner) is the
 * same for every invocation, so it is read from the invocation row rather than stored again.
 * `changed_by` is NULL when the owner made the change (claims and an owner's own steps), which
 * keeps rows short: a claim then grows its row by the owner only.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE invocations (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    ready_at INTEGER,
    parent_id TEXT,
    result TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    changed_by TEXT,
    changes INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX invocations_queue ON invocations(ready_at, seq) WHERE ready_at IS NOT NULL;
  CREATE TABLE history (
    inv_seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    runner_id TEXT,
    PRIMARY KEY (inv_seq, n)
  ) WITHOUT ROWID;
  CREATE TRIGGER invocations_history AFTER UPDATE OF status ON invocations BEGIN
    INSERT OR REPLACE INTO history (inv_seq, n, status, at, attempt, runner_id)
    VALUES (NEW.seq, NEW.changes, NEW.status, NEW.updated_at, NEW.attempt, coalesce(NEW.changed_by, NEW.owner));
  END;
  CREATE TABLE logs (
    inv_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    runner_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
  );
  CREATE INDEX logs_invocation ON logs(inv_seq);
  CREATE TABLE runners (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    host_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at INTEGER,
    dead_at INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
  `,
];

export interface OpenOptions {
  readonly path: string;
  readonly appId: string;
}

/**
 * Open (creating when missing) the database of one app: WAL so readers never block the writer,
 * synchronous=NORMAL (a commit survives the crash of its process; a power cut may lose the last
 * few, never the file's consistency), foreign keys off, and the schema at SCHEMA_VERSION, set up
 * in one IMMEDIATE transaction so that processes opening a new file at once do it only once.
 * While opening, a busy timeout makes it wait for them; afterwards SqliteLocking takes over.
 */
export function openDatabase({ path, appId }: OpenOptions): SqliteDatabase {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  let db: SqliteDatabase | undefined;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = OFF");
    db.pragma("cache_size = -32000");
    db.pragma("temp_store = MEMORY");
    db.pragma("journal_size_limit = 67108864");
    const opened = db;
    if (needsSetUp(opened, appId)) opened.transaction(() => setUp(opened, path, appId)).immediate();
    return opened;
  } catch (error) {
    db?.close();
    if (error instanceof NencError) throw error;
    throw new NencError(`cannot open the nenc database ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function userVersion(db: SqliteDatabase): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/** Cheap read-only check first, so that opening an up-to-date file takes no write lock. */
function needsSetUp(db: SqliteDatabase, appId: string): boolean {
  if (userVersion(db) !== SCHEMA_VERSION) return true;
  if (storedAppId(db) !== appId) return true;
  return Object.entries(DERIVED_INDEXES).some(([name, sql]) => indexSql(db, name) !== sql);
}

function setUp(db: SqliteDatabase, path: string, appId: string): void {
  const version = userVersion(db);
  if (version > SCHEMA_VERSION) {
    throw new NencError(
      `${path} has nenc schema version ${version}, newer than this nenc understands (${SCHEMA_VERSION}); upgrade nenc to open it`,
    );
  }
  if (version === 0 && hasForeignTables(db)) {
    throw new NencError(`${path} is an SQLite database that nenc did not create; refusing to add nenc's tables to it`);
  }
  db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
  const stored = storedAppId(db);
  if (stored === undefined) {
    if (version > 0) throw new NencError(`${path} is a nenc database with no app id recorded; it cannot be opened for app "${appId}"`);
    db.prepare("INSERT INTO meta (key, value) VALUES ('app_id', ?)").run(appId);
  } else if (stored !== appId) {
    throw new NencError(
      `${path} holds the data of app "${stored}", not of app "${appId}": give each app its own file (sqlitePath / NENC_SQLITE_PATH)`,
    );
  }
  for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] ?? "");
  for (const [name, sql] of Object.entries(DERIVED_INDEXES)) {
    if (indexSql(db, name) === sql) continue;
    db.exec(`DROP INDEX IF EXISTS ${name}`);
    db.exec(sql);
  }
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

function hasForeignTables(db: SqliteDatabase): boolean {
  return (
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT IN ('meta') AND name NOT LIKE 'sqlite_%'").pluck().get() !==
    undefined
  );
}

function storedAppId(db: SqliteDatabase): string | undefined {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").pluck().get();
  if (!hasMeta) return undefined;
  const value = db.prepare("SELECT value FROM meta WHERE key = 'app_id'").pluck().get();
  return typeof value === "string" ? value : undefined;
}

function indexSql(db: SqliteDatabase, name: string): string | undefined {
  const sql = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?").pluck().get(name);
  return typeof sql === "string" ? sql : undefined;
}
