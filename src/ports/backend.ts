import type { Status } from "../core/status.js";
import type { TransitionRequest } from "../core/transition.js";
import type {
  ClaimedInvocation,
  HistoryView,
  InvocationFilter,
  InvocationRecord,
  LogLine,
  NewInvocation,
  RunnerInfo,
  RunnerRecord,
} from "./records.js";

/**
 * The ports a backend implements. They only store and compare-and-set: every rule (which
 * transition is allowed, who owns what, what recovery does) is decided in core and arrives here
 * as data. Each method that writes is one atomic step on the backend.
 */

/** Owns status: writes transitions, runner liveness and the recoverer's lease. */
export interface Orchestrator {
  /** Create invocations, REGISTERED and claimable, with their first history entry; all or none. */
  register(invocations: readonly NewInvocation[]): Promise<void>;
  /**
   * Apply compare-and-sets in order, as one atomic batch: each applies only if its `expect` still
   * holds (later ones see earlier ones' effects). A SUCCESS/FAILED/RETRY request also stores its
   * result or error. Returns, per request, whether it applied.
   */
  transition(requests: readonly TransitionRequest[]): Promise<boolean[]>;
  registerRunner(info: RunnerInfo, now: number): Promise<void>;
  /** Record that the runner is alive. False once it was declared dead or stopped: it must stop. */
  heartbeat(runnerId: string, now: number): Promise<boolean>;
  /**
   * Mark runners stopped (graceful) or dead (by recovery); a heartbeat after that returns false. A
   * runner is retired once: one retired already keeps how and when (a recovery pass that read the
   * runners before one stopped may find it gone after it exited, and call it dead). Answers the
   * ids it retired now, in the order given: not those retired already, nor unknown ones. An empty
   * list is answered at once, without a call to the store.
   */
  retireRunners(runnerIds: readonly string[], how: "stopped" | "dead", now: number): Promise<string[]>;
  runners(): Promise<RunnerRecord[]>;
  /**
   * Take or renew a named lease: true if `holder` has it until now + ttlMs. It is free when
   * missing, expired, already `holder`'s, or held by `replacing` (a holder known to be dead).
   */
  acquireLease(name: string, holder: string, now: number, ttlMs: number, replacing?: string): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
  /**
   * Optional, for backends that see their clients' connections (PostgreSQL session locks, Redis
   * client names): the runners that may still be connected. A runner missing from the set had a
   * connection for its heartbeat and it has closed: its process is gone, so recovery need not wait
   * for its heartbeat to time out. A runner that has not beaten yet counts as connected. Null when
   * the backend cannot tell right now (for instance just after a server restart, while live
   * runners reconnect).
   */
  connectedRunners?(): Promise<Set<string> | null>;
}

export interface ClaimOptions {
  /** Record them as started (RUNNING) too, not only claimed. Default false. */
  readonly start?: boolean;
}

/** The queue: which invocations are ready, handed out atomically, and a wake-up when that changes. */
export interface Broker {
  /**
   * Claim up to `max` claimable invocations whose readyAt has come, oldest first, in one atomic
   * step: each enters CLAIMED_STATUS (PENDING), owned by `runnerId`, with its attempt bumped and a
   * history entry. With `start`, each goes on to STARTED_STATUS (RUNNING) in the same step, with a
   * second history entry at the same time: for a runner about to run them all.
   * A runner that is unknown or retired (stopped, declared dead) claims nothing.
   * "Oldest first" may bend a little where a backend serves a busy runner from where its last
   * claim ended (PostgreSQL): an invocation that becomes ready behind invocations already claimed
   * (an earlier ready time from a host whose clock is behind, a registration that committed after
   * a later one) waits for the next walk of the whole queue, within about 100 ms while claims come.
   * A claim that comes back short has looked at the whole queue.
   */
  claim(runnerId: string, max: number, now: number, options?: ClaimOptions): Promise<ClaimedInvocation[]>;
  /** How many are claimable now. */
  queueLength(now: number): Promise<number>;
  /** Call `listener` soon after anything may have changed (new work, a status); a hint, not data. */
  subscribe(listener: () => void): () => void;
}

/** Everything stored about invocations: what handles, the CLI and the monitor read. */
export interface StateStore {
  get(id: string): Promise<InvocationRecord | null>;
  /**
   * The ids among `ids` whose invocation is in a final status, each once, in one round trip;
   * unknown ids are left out. Reads only id and status, so a row damaged elsewhere does not fail the call: the
   * result watcher asks this of thousands of waited invocations per pass, then reads only these.
   */
  finalAmong(ids: readonly string[]): Promise<string[]>;
  list(filter: InvocationFilter): Promise<InvocationRecord[]>;
  history(id: string): Promise<HistoryView[]>;
  /** Store log lines, each only if its attempt is still current and owned by its runner (fenced). */
  appendLogs(lines: readonly LogLine[]): Promise<number>;
  logs(id: string): Promise<LogLine[]>;
  counts(): Promise<Partial<Record<Status, number>>>;
  /** Delete every invocation, history entry, log, runner and lease of this app. */
  purge(): Promise<void>;
}

export interface Capabilities {
  /** Other processes (and hosts) see the same data: workers and clients may be separate processes. */
  readonly sharedAcrossProcesses: boolean;
  /**
   * How many invocations one register call carries when a caller stores many (parallelize, unless
   * `parallelBatchSize` says otherwise): as many as the backend stores in one step without holding
   * up its other clients for long.
   */
  readonly registerBatchSize: number;
  /**
   * How far a worker running short tasks claims ahead of its free slots (see Worker): it holds at
   * most `batches` batches of its concurrency, in claims of at most `claimSize` invocations (or
   * its concurrency, where that is larger). More pays where a statement costs more than its rows
   * (a network database: a round trip and a commit each); less where one large claim holds up the
   * backend's other clients (one SQLite file that several workers share).
   */
  readonly claimAhead: { readonly batches: number; readonly claimSize: number };
}

export interface Backend {
  readonly kind: string;
  readonly capabilities: Capabilities;
  readonly orchestrator: Orchestrator;
  readonly broker: Broker;
  readonly state: StateStore;
  /**
   * Optional: get ready for a worker's claims and writes at full rate (open the connections they
   * will use, have the server plan their statements), so that the first work does not pay for it.
   */
  prepareForWork?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * claimAhead: a drain of no-ops on PostgreSQL (40,000, concurrency 50, two claims and one write
 * batch in flight) took 2.24 s with one batch ahead, 1.82 with four, 1.41 with ten and 1.35 with
 * twenty; but two SQLite workers sharing a queue drained at 31k/s with twenty against 36k with ten
 * (medians of 6): a worker that holds more leaves less for the others. Ten batches in claims of
 * 250 suit SQLite; PostgreSQL takes more, Redis smaller claims (postgres-backend.ts,
 * redis-backend.ts).
 */
export const defaultCapabilities: Capabilities = {
  sharedAcrossProcesses: true,
  registerBatchSize: 1000,
  claimAhead: { batches: 10, claimSize: 250 },
};

/**
 * What is wrong with a backend's capabilities, one line each (none when they are sound): for a
 * Backend that an app is given rather than builds, written against an older version of this
 * interface or in plain JavaScript, so that it fails at once with the field's name rather than in
 * a worker's first claim.
 */
export function capabilityProblems(capabilities: unknown): string[] {
  const positive = (value: unknown) => Number.isInteger(value) && (value as number) >= 1;
  if (typeof capabilities !== "object" || capabilities === null) return ["capabilities: missing (an object is expected)"];
  const given = capabilities as Partial<Record<keyof Capabilities, unknown>>;
  const claimAhead = given.claimAhead as { batches?: unknown; claimSize?: unknown } | undefined;
  const problems: string[] = [];
  if (typeof given.sharedAcrossProcesses !== "boolean") problems.push("capabilities.sharedAcrossProcesses: expected true or false");
  if (!positive(given.registerBatchSize)) problems.push("capabilities.registerBatchSize: expected a whole number from 1");
  if (typeof claimAhead !== "object" || claimAhead === null || !positive(claimAhead.batches) || !positive(claimAhead.claimSize)) {
    problems.push("capabilities.claimAhead: expected { batches, claimSize }, each a whole number from 1");
  }
  return problems;
}
