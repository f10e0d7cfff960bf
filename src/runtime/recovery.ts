import type { AppConfig } from "../core/config.js";
import type { Clock } from "../core/clock.js";
import { ORPHANABLE_STATUSES, OWNED_STATUSES } from "../core/status.js";
import { planRecovery, type TransitionRequest } from "../core/transition.js";
import type { Backend } from "../ports/backend.js";
import type { InvocationRecord, RunnerRecord } from "../ports/records.js";
import { hostId, processAlive } from "./host.js";

export const RECOVERY_LEASE = "recovery";
/** Passes between full sweeps of invocations when no runner has just died. */
const SWEEP_EVERY = 10;

export interface RecoveryReport {
  readonly deadRunners: string[];
  readonly recovered: string[];
}

/**
 * Whether a runner is dead, as far as this host can tell: gone from this host, its backend
 * connection closed (when the backend can see connections), or silent too long.
 */
export function runnerIsDead(
  runner: RunnerRecord,
  now: number,
  deadAfterMs: number,
  connected: ReadonlySet<string> | null = null,
): boolean {
  if (runner.deadAt !== null || runner.stoppedAt !== null) return true;
  if (runner.hostId === hostId && !processAlive(runner.pid, runner.pidStart)) return true;
  if (connected !== null && !connected.has(runner.id)) return true;
  return now - runner.heartbeatAt > deadAfterMs;
}

/**
 * The recovery service. Every worker runs one; a lease in the backend lets one act at a time
 * (no cron, no clock slots). Each pass:
 *   1. declares dead the runners whose process is gone from this host, whose backend connection
 *      closed (Orchestrator.connectedRunners), or whose heartbeat is older than runnerDeadAfterMs,
 *   2. takes back every invocation in an owned status whose owner is not a live runner (each
 *      status's recoverTo, then REROUTED: all compare-and-sets, so a live owner's write or another
 *      recoverer can never be overwritten),
 *   3. reroutes unowned, unclaimable invocations left behind longer than runnerDeadAfterMs.
 * Steps 2 and 3 run when a runner was just found dead, and otherwise every tenth pass (an idle
 * pass costs one read of the runners). A runner on this host that holds the lease but whose
 * process is gone loses it at once; the holder renews its lease only when a third has passed.
 */
export class Recovery {
  readonly #backend: Backend;
  readonly #config: AppConfig;
  readonly #clock: Clock;
  readonly #holder: () => string;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #lastSweep = Number.NEGATIVE_INFINITY;
  #lease = { holder: "", until: 0 };
  readonly #onError: (error: unknown) => void;
  readonly #onReport: (report: RecoveryReport) => void;

  constructor(options: {
    backend: Backend;
    config: AppConfig;
    clock: Clock;
    holder: () => string;
    onError: (error: unknown) => void;
    onReport?: (report: RecoveryReport) => void;
  }) {
    this.#backend = options.backend;
    this.#config = options.config;
    this.#clock = options.clock;
    this.#holder = options.holder;
    this.#onError = options.onError;
    this.#onReport = options.onReport ?? (() => {});
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#config.recoveryIntervalMs);
    this.#timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#lease = { holder: "", until: 0 };
    await this.#backend.orchestrator.releaseLease(RECOVERY_LEASE, this.#holder()).catch(() => {});
  }

  async tick(): Promise<RecoveryReport | null> {
    if (this.#running) return null;
    this.#running = true;
    try {
      const report = await this.pass();
      if (report && (report.deadRunners.length || report.recovered.length)) this.#onReport(report);
      return report;
    } catch (error) {
      this.#onError(error);
      return null;
    } finally {
      this.#running = false;
    }
  }

  /** One pass; null when another runner holds the lease. */
  async pass(): Promise<RecoveryReport | null> {
    const { orchestrator, state } = this.#backend;
    const now = this.#clock.now();
    const runners = await orchestrator.runners();
    // Asked after the runners are read, so that a runner registering meanwhile is not missed.
    const connected = (await orchestrator.connectedRunners?.()) ?? null;
    if (!(await this.#acquireLease(runners, now, connected))) return null;
    const deadAfter = this.#config.runnerDeadAfterMs;
    const isDead = (r: RunnerRecord) => runnerIsDead(r, now, deadAfter, connected);
    const newlyDead = runners.filter((r) => r.deadAt === null && r.stoppedAt === null && isDead(r));
    // Those it declares dead: a runner that stopped after the read above is left stopped (its own
    // stop gave back its work), and is not reported. An empty list costs no call to the backend.
    const declared = await orchestrator.retireRunners(
      newlyDead.map((r) => r.id),
      "dead",
      now,
    );
    const live = new Set(runners.filter((r) => !isDead(r)).map((r) => r.id));
    // Scanning invocations is the costly part: do it when a runner was just found dead, and
    // otherwise every SWEEP_EVERY passes for what an earlier, interrupted pass left behind.
    const sweepDue = now - this.#lastSweep >= this.#config.recoveryIntervalMs * SWEEP_EVERY;
    if (declared.length === 0 && !sweepDue) return { deadRunners: [], recovered: [] };
    this.#lastSweep = now;

    const owned = await state.list({ statuses: OWNED_STATUSES });
    const orphaned = owned.filter((inv) => inv.owner === null || !live.has(inv.owner));
    const leftBehind = await state.list({ statuses: ORPHANABLE_STATUSES, updatedBefore: now - deadAfter });
    const requests = [...orphaned, ...leftBehind].flatMap((inv) => this.#plan(inv, now));
    const applied = requests.length ? await orchestrator.transition(requests) : [];
    const recovered = new Set(requests.filter((r, i) => applied[i] && r.to === "REROUTED").map((r) => r.id));
    return { deadRunners: declared, recovered: [...recovered] };
  }

  #plan(inv: InvocationRecord, now: number): TransitionRequest[] {
    return planRecovery(inv, this.#holder(), now);
  }

  async #acquireLease(runners: RunnerRecord[], now: number, connected: ReadonlySet<string> | null): Promise<boolean> {
    const { orchestrator } = this.#backend;
    const ttl = this.#config.recoveryLeaseMs;
    const holder = this.#holder();
    // Renewing is a write: skip it while at least two thirds of the lease remain.
    if (this.#lease.holder === holder && this.#lease.until - now > (ttl * 2) / 3) return true;
    this.#lease = { holder, until: 0 };
    if (await orchestrator.acquireLease(RECOVERY_LEASE, holder, now, ttl)) {
      this.#lease = { holder, until: now + ttl };
      return true;
    }
    // The holder may be a runner whose process is gone: then waiting out its lease only delays
    // recovery. Break the lease only when this host or the backend can tell for certain.
    const gone = (r: RunnerRecord) =>
      (r.hostId === hostId && !processAlive(r.pid, r.pidStart)) || (connected !== null && !connected.has(r.id));
    // A lease holder is never retired (only its holder retires runners; a stop releases it).
    const dead = runners.filter((r) => r.id !== holder && r.deadAt === null && r.stoppedAt === null && gone(r));
    for (const runner of dead) {
      if (await orchestrator.acquireLease(RECOVERY_LEASE, holder, now, ttl, runner.id)) {
        this.#lease = { holder, until: now + ttl };
        return true;
      }
    }
    return false;
  }
}
