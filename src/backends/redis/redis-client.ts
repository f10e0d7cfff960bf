import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { asError, NencError } from "../../core/errors.js";
import { RedisKeys } from "./redis-keys.js";
import { SCRIPTS, scriptText, type ScriptName } from "./redis-scripts.js";

/** The server could not be reached, or the connection dropped before a reply came. */
export class RedisUnreachableError extends NencError {
  override name = "RedisUnreachableError";
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`Redis at ${url} is unreachable: ${detail}`);
  }
}

/**
 * How commands behave while the server is away. ioredis reconnects by itself; a command issued
 * meanwhile waits in its offline queue for a few reconnect attempts (about 1.5 s) and then fails
 * with RedisUnreachableError, so callers never hang on a server that is gone. A command that was
 * on the wire when the connection dropped is resent if the reconnect comes within those attempts
 * (the call tokens of the scripts make that resend harmless), else it fails like the others and
 * its outcome is in doubt: the orchestrator and the broker settle that on their next call.
 */
const CONNECTION_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 5,
  enableOfflineQueue: true,
  connectTimeout: 5000,
  retryStrategy: (times: number) => Math.min(times * 100, 500),
  enableAutoPipelining: false,
};

type ScriptCall = (prefix: string, ...args: string[]) => Promise<unknown>;

/**
 * One connection to Redis for one app: scripts, error translation, call tokens and the client
 * name that tells the server which runners this connection speaks for.
 */
export class RedisClient {
  readonly keys: RedisKeys;
  readonly url: string;
  readonly redis: Redis;
  #lastError: string | null = null;
  /** Tokens whose replies arrived: the next script call deletes their stored replies. */
  #acks: string[] = [];
  readonly #tokenPrefix = randomBytes(6).toString("hex");
  #tokens = 0;
  readonly #runnerIds = new Set<string>();

  constructor(url: string, appId: string) {
    this.url = redactUrl(url);
    this.keys = new RedisKeys(appId);
    this.redis = new Redis(url, CONNECTION_OPTIONS);
    this.redis.on("error", (error: Error) => (this.#lastError = error.message));
    this.redis.on("ready", () => (this.#lastError = null));
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      this.redis.defineCommand(name, { numberOfKeys: 1, lua: scriptText(name) });
    }
  }

  /** A fresh call token: unique per call, so a resent call is recognised by the script. */
  token(): string {
    return `${this.#tokenPrefix}.${(this.#tokens++).toString(36)}`;
  }

  /** Run a script; `token` ('' for none) makes a repeat of the same call answer as the first one. */
  async run(name: ScriptName, token: string, args: readonly string[]): Promise<unknown> {
    const acks = this.#acks;
    this.#acks = [];
    const call = (this.redis as unknown as Record<ScriptName, ScriptCall>)[name].bind(this.redis);
    try {
      const reply = await call(this.keys.prefix, token, acks.join(","), ...args);
      if (token) this.#acks.push(token);
      return reply;
    } catch (error) {
      this.#acks.push(...acks);
      throw this.translate(error);
    }
  }

  /** Send a command the driver knows, with errors translated. */
  async command<T>(send: (redis: Redis) => Promise<T>): Promise<T> {
    try {
      return await send(this.redis);
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** Run a pipeline of reads; each reply, in order. */
  async pipeline(build: (pipeline: ReturnType<Redis["pipeline"]>) => void): Promise<unknown[]> {
    const pipeline = this.redis.pipeline();
    build(pipeline);
    const results = await this.command(() => pipeline.exec());
    return (results ?? []).map(([error, value]) => {
      if (error) throw this.translate(error);
      return value;
    });
  }

  /**
   * Our errors for the driver's: a reply from the server stays what it says; anything else means
   * the server could not be reached (or the reply was lost), named as such with the last cause.
   */
  translate(error: unknown): Error {
    if (error instanceof NencError) return error;
    const e = asError(error);
    if (e.name === "ReplyError") return new NencError(`Redis at ${this.url} refused a command: ${e.message}`);
    const detail = this.#lastError ?? (e.name === "MaxRetriesPerRequestError" ? "no connection" : e.message);
    return new RedisUnreachableError(this.url, detail);
  }

  /** From now on this connection carries `runnerId` in its client name (also after a reconnect). */
  async speakFor(runnerId: string): Promise<void> {
    if (this.#runnerIds.has(runnerId)) return;
    this.#runnerIds.add(runnerId);
    await this.#rename();
  }

  /** This connection no longer speaks for these runners. */
  async stopSpeakingFor(runnerIds: readonly string[]): Promise<void> {
    let changed = false;
    for (const id of runnerIds) changed = this.#runnerIds.delete(id) || changed;
    if (changed) await this.#rename();
  }

  async #rename(): Promise<void> {
    const name = this.keys.connectionName(this.#runnerIds);
    this.redis.options.connectionName = name || undefined;
    await this.command((redis) => redis.client("SETNAME", name));
  }

  /** A second connection for pub/sub, without this one's client name. */
  subscriber(): Redis {
    const sub = this.redis.duplicate({ connectionName: undefined, maxRetriesPerRequest: null });
    sub.on("error", () => {});
    return sub;
  }

  async close(): Promise<void> {
    const redis = this.redis;
    if (redis.status !== "ready") {
      redis.disconnect();
      return;
    }
    try {
      if (this.#acks.length) await redis.unlink(...this.#acks.map((t) => this.keys.done(t)));
      await redis.quit();
    } catch {
      redis.disconnect();
    }
  }
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}
