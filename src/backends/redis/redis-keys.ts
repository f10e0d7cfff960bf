/**
 * Every key of an app starts with `nenc:{<appId>}:`. The braces are a hash tag, so a Redis Cluster
 * keeps all of an app's keys in one slot and its scripts can touch any of them. The app id is
 * escaped so that no app's prefix is a prefix of another's and glob patterns need no escaping.
 */
export class RedisKeys {
  readonly appId: string;
  readonly prefix: string;

  constructor(appId: string) {
    this.appId = appId;
    this.prefix = `nenc:{${escapeName(appId)}}:`;
  }

  /** Pattern that matches every key of this app and nothing else (for SCAN). */
  get pattern(): string {
    return `${this.prefix}*`;
  }

  /** Where the scripts publish after adding work or finishing invocations. */
  get channel(): string {
    return `${this.prefix}wake`;
  }

  /** Sorted set of claimable invocations: score readyAt, member creation sequence (16 digits) + id. */
  get ready(): string {
    return `${this.prefix}ready`;
  }

  invocation(id: string): string {
    return `${this.prefix}inv:${id}`;
  }

  logs(id: string): string {
    return `${this.prefix}logs:${id}`;
  }

  /** A sorted set indexing invocations by status group (see indexOf in redis-scripts.ts). */
  index(group: string): string {
    return `${this.prefix}${group}`;
  }

  /** Hash: invocations per status. */
  get counts(): string {
    return `${this.prefix}counts`;
  }

  get runners(): string {
    return `${this.prefix}runners`;
  }

  runner(id: string): string {
    return `${this.prefix}runner:${id}`;
  }

  done(token: string): string {
    return `${this.prefix}done:${token}`;
  }

  /** The client name that marks a connection as speaking for these runners. */
  connectionName(runnerIds: Iterable<string>): string {
    const ids = [...runnerIds].map(escapeName);
    return ids.length ? `${this.connectionNamePrefix}${ids.join(",")}` : "";
  }

  get connectionNamePrefix(): string {
    return `nenc:${escapeName(this.appId)}:`;
  }

  /** The runner ids a client name speaks for, or none when it is not one of this app's. */
  runnersOfConnection(name: string): string[] {
    if (!name.startsWith(this.connectionNamePrefix)) return [];
    return name.slice(this.connectionNamePrefix.length).split(",").filter(Boolean).map(decodeURIComponent);
  }
}

/** Keep letters, digits and `_.-`; everything else becomes %XX (UTF-8), as decodeURIComponent reads it. */
export function escapeName(name: string): string {
  return encodeURIComponent(name).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
