import type { Client } from "pg";
import { WakeUps } from "../../ports/wake-ups.js";
import type { PostgresConnection } from "./postgres-connection.js";

const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2000;
/** How long the connection stays open after the last listener left, for the next one to reuse. */
const LINGER_MS = 1000;

/**
 * Wake-ups for one app: LISTEN on the app's channel on a connection of its own, opened with the
 * first subscriber. Every write statement that may matter to a waiter (new work, a status change)
 * sends a NOTIFY in the same transaction, so listeners hear of it when it commits, and an idle
 * process does no work at all. Notifications arriving together wake the listeners once.
 *
 * When the connection drops (server restart, network), it reconnects by itself with backoff, LISTENs
 * again and wakes the listeners once, since anything may have changed while it was away (it does
 * the same on first connect: a listener may have subscribed just after the change it waits for).
 * With no listener left it closes, so that it does not keep the process alive.
 */
export class PostgresListener {
  readonly #connection: PostgresConnection;
  /** Notifications arriving in separate reads of one burst wake listeners once. */
  readonly #wakeUps = new WakeUps(setImmediate);
  #client: Client | undefined;
  #connecting = false;
  #delay = RECONNECT_MIN_MS;
  #timer: NodeJS.Timeout | undefined;
  #linger: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(connection: PostgresConnection) {
    this.#connection = connection;
  }

  subscribe(listener: () => void): () => void {
    if (this.#closed) return () => {};
    const remove = this.#wakeUps.add(listener);
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (!this.#client && !this.#connecting && !this.#timer) void this.#connect();
    return () => {
      remove();
      if (this.#wakeUps.size === 0 && !this.#linger) {
        this.#linger = setTimeout(() => this.#idle(), LINGER_MS);
        this.#linger.unref();
      }
    };
  }

  #idle(): void {
    this.#linger = undefined;
    if (this.#wakeUps.size > 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = undefined;
    void client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    this.#connecting = true;
    let client: Client | undefined;
    try {
      client = await this.#connection.connect();
      client.on("notification", () => this.#wake());
      client.on("error", () => this.#lost(client!));
      client.on("end", () => this.#lost(client!));
      await client.query(`LISTEN "${this.#connection.channel}"`);
      if (this.#closed || this.#wakeUps.size === 0) {
        await client.end().catch(() => {});
        return;
      }
      this.#client = client;
      this.#delay = RECONNECT_MIN_MS;
      this.#wake();
    } catch {
      await client?.end().catch(() => {});
      this.#retry();
    } finally {
      this.#connecting = false;
    }
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    void client.end().catch(() => {});
    this.#retry();
  }

  #retry(): void {
    if (this.#closed || this.#timer || this.#wakeUps.size === 0) return;
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
    this.#timer.unref();
  }

  #wake(): void {
    if (!this.#closed) this.#wakeUps.wake();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#linger);
    this.#wakeUps.clear();
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
