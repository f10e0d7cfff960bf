/**
 * The invocation state machine. This table is the single source of truth: the transition check,
 * the recovery rules, the claim query of every backend and `nenc states` are all derived from it.
 *
 * Flags, per status:
 * - final: nothing leaves it.
 * - claimable: a runner may claim it (it is in the queue); no runner owns it.
 * - owned: entering it makes the acting runner the owner; leaving it is the owner's right only.
 * - acquires: entering it is a claim; the claimer becomes the owner and the attempt (fencing
 *   token) is bumped, so every write of an earlier attempt is refused from then on.
 * - overrides: entering it is allowed to a non-owner (recovery takes an invocation back).
 * - recoverTo: where recovery moves it when its owner is dead (or it has no owner and sat too
 *   long); every non-final status that is not claimable has one, so nothing can be stranded.
 */
export const STATUSES = [
  "REGISTERED",
  "PENDING",
  "RUNNING",
  "PAUSED",
  "RESUMED",
  "KILLED",
  "RETRY",
  "REROUTED",
  "PENDING_RECOVERY",
  "RUNNING_RECOVERY",
  "CONCURRENCY_CONTROLLED",
  "CONCURRENCY_CONTROLLED_FINAL",
  "SUCCESS",
  "FAILED",
] as const;

export type Status = (typeof STATUSES)[number];

export interface StatusRule {
  readonly to: readonly Status[];
  readonly final?: boolean;
  readonly claimable?: boolean;
  readonly owned?: boolean;
  readonly acquires?: boolean;
  readonly overrides?: boolean;
  readonly recoverTo?: Status;
  readonly description: string;
}

export const STATUS_TABLE: Readonly<Record<Status, StatusRule>> = {
  REGISTERED: {
    to: ["PENDING", "CONCURRENCY_CONTROLLED", "CONCURRENCY_CONTROLLED_FINAL"],
    claimable: true,
    description: "recorded and routed: waiting in the queue for a runner",
  },
  PENDING: {
    to: ["RUNNING", "KILLED", "REROUTED", "PENDING_RECOVERY"],
    owned: true,
    acquires: true,
    recoverTo: "PENDING_RECOVERY",
    description: "claimed by a runner, about to run",
  },
  RUNNING: {
    to: ["PAUSED", "KILLED", "RETRY", "SUCCESS", "FAILED", "RUNNING_RECOVERY"],
    owned: true,
    recoverTo: "RUNNING_RECOVERY",
    description: "running on its owner",
  },
  PAUSED: {
    to: ["RESUMED", "KILLED", "RUNNING_RECOVERY"],
    owned: true,
    recoverTo: "RUNNING_RECOVERY",
    description: "waiting on other invocations; its runner slot is free",
  },
  RESUMED: {
    to: ["PAUSED", "KILLED", "RETRY", "SUCCESS", "FAILED", "RUNNING_RECOVERY"],
    owned: true,
    recoverTo: "RUNNING_RECOVERY",
    description: "running again after a pause",
  },
  KILLED: {
    to: ["REROUTED"],
    recoverTo: "REROUTED",
    description: "its runner stopped gracefully mid-task",
  },
  RETRY: {
    to: ["PENDING"],
    claimable: true,
    description: "failed with a retriable error; claimable again after its backoff",
  },
  REROUTED: {
    to: ["PENDING", "CONCURRENCY_CONTROLLED"],
    claimable: true,
    description: "back in the queue after a stop, a recovery or a concurrency block",
  },
  PENDING_RECOVERY: {
    to: ["REROUTED"],
    overrides: true,
    recoverTo: "REROUTED",
    description: "taken back from a dead runner before it started",
  },
  RUNNING_RECOVERY: {
    to: ["REROUTED"],
    overrides: true,
    recoverTo: "REROUTED",
    description: "taken back from a dead runner mid-task; it will run again",
  },
  CONCURRENCY_CONTROLLED: {
    to: ["REROUTED"],
    recoverTo: "REROUTED",
    description: "blocked by a running-concurrency rule; will be rerouted",
  },
  CONCURRENCY_CONTROLLED_FINAL: {
    to: [],
    final: true,
    description: "refused by a concurrency rule for good",
  },
  SUCCESS: { to: [], final: true, description: "finished with a result" },
  FAILED: { to: [], final: true, description: "finished with an error" },
};

export const FINAL_STATUSES: readonly Status[] = STATUSES.filter((s) => STATUS_TABLE[s].final);
export const CLAIMABLE_STATUSES: readonly Status[] = STATUSES.filter((s) => STATUS_TABLE[s].claimable);
/** Statuses that have an owner: recovery looks for these among dead runners' invocations. */
export const OWNED_STATUSES: readonly Status[] = STATUSES.filter((s) => STATUS_TABLE[s].owned);
/** Statuses with no owner that recovery still watches: unowned but not claimable, not final. */
export const ORPHANABLE_STATUSES: readonly Status[] = STATUSES.filter(
  (s) => !STATUS_TABLE[s].owned && !STATUS_TABLE[s].claimable && !STATUS_TABLE[s].final,
);

/** The status a claim enters: the one whose entry makes the claimer the owner. */
export const CLAIMED_STATUS: Status = onlyAcquiringStatus();
/**
 * The status a claim made "to start" goes on to in the same atomic step, for a runner that runs
 * what it claims at once: its task body is about to run.
 */
export const STARTED_STATUS: Status = "RUNNING";
if (!canTransition(CLAIMED_STATUS, STARTED_STATUS)) throw new Error(`a claim cannot go on from ${CLAIMED_STATUS} to ${STARTED_STATUS}`);

function onlyAcquiringStatus(): Status {
  const acquiring = STATUSES.filter((s) => STATUS_TABLE[s].acquires === true);
  if (acquiring.length !== 1 || !acquiring[0]) throw new Error("the status table must have exactly one status a claim enters");
  return acquiring[0];
}

export function isStatus(value: unknown): value is Status {
  return typeof value === "string" && (STATUSES as readonly string[]).includes(value);
}

export function isFinal(status: Status): boolean {
  return STATUS_TABLE[status].final === true;
}

export function canTransition(from: Status, to: Status): boolean {
  return STATUS_TABLE[from].to.includes(to);
}

/** The statuses from which `to` may be entered. */
export function sourcesOf(to: Status): Status[] {
  return STATUSES.filter((s) => STATUS_TABLE[s].to.includes(to));
}
