import { canTransition, STATUS_TABLE, type Status } from "./status.js";
import { InvalidTransitionError, OwnershipError } from "./errors.js";

/** What a backend must hold about an invocation for the rules to decide a transition. */
export interface Ownership {
  readonly id: string;
  readonly status: Status;
  readonly attempt: number;
  readonly owner: string | null;
}

/**
 * One atomic compare-and-set. A backend applies it only if the stored invocation still has
 * `expect`'s status and attempt (and owner, when given); otherwise it changes nothing and reports
 * false. The new values are computed here, in core, never in a backend.
 */
export interface TransitionRequest {
  readonly id: string;
  readonly expect: { readonly status: Status; readonly attempt: number; readonly owner?: string | null };
  readonly to: Status;
  readonly owner: string | null;
  readonly attempt: number;
  /** When it becomes claimable again (epoch ms); null unless `to` is claimable. */
  readonly readyAt: number | null;
  readonly at: number;
  /** The runner that made the change, for the history; null for a client. */
  readonly by: string | null;
  readonly result?: string;
  readonly error?: string;
  readonly retries?: number;
}

export interface TransitionOptions {
  readonly by: string | null;
  readonly at: number;
  readonly readyAt?: number;
  readonly result?: string;
  readonly error?: string;
  readonly retries?: number;
}

/**
 * Check one transition against the table and the ownership rules and build the compare-and-set
 * for it. Throws when the table forbids it or the actor has no right to it.
 */
export function planTransition(current: Ownership, to: Status, options: TransitionOptions): TransitionRequest {
  if (!canTransition(current.status, to)) {
    throw new InvalidTransitionError(current.id, current.status, to);
  }
  const from = STATUS_TABLE[current.status];
  const target = STATUS_TABLE[to];
  const mustOwn = from.owned === true && target.overrides !== true;
  if (mustOwn && current.owner !== options.by) {
    throw new OwnershipError(current.id, current.status, to, current.owner, options.by);
  }
  // One object literal of one shape (absent values are undefined): built for every step of every
  // invocation, and spreads of optional parts allocated and shaped each request differently.
  return {
    id: current.id,
    expect: mustOwn
      ? { status: current.status, attempt: current.attempt, owner: current.owner }
      : { status: current.status, attempt: current.attempt },
    to,
    // Only owned statuses have an owner; a claim makes the claimer the owner.
    owner: target.acquires ? options.by : target.owned ? current.owner : null,
    attempt: target.acquires ? current.attempt + 1 : current.attempt,
    readyAt: target.claimable ? (options.readyAt ?? options.at) : null,
    at: options.at,
    by: options.by,
    result: options.result,
    error: options.error,
    retries: options.retries,
  };
}

/** The ownership an invocation has once `request` is applied: used to chain transitions. */
export function afterTransition(request: TransitionRequest): Ownership {
  return { id: request.id, status: request.to, attempt: request.attempt, owner: request.owner };
}

/**
 * Recovery of one invocation whose owner is dead: its status's `recoverTo`, then onward until a
 * claimable status, each step a compare-and-set on the previous one. Applied in order, all in
 * one atomic batch by the backend.
 */
export function planRecovery(current: Ownership, by: string, at: number): TransitionRequest[] {
  const steps: TransitionRequest[] = [];
  let state = current;
  for (let next = STATUS_TABLE[state.status].recoverTo; next; next = STATUS_TABLE[state.status].recoverTo) {
    const step = planTransition(state, next, { by, at });
    steps.push(step);
    state = afterTransition(step);
  }
  return steps;
}

/** Whether a stored invocation still satisfies a request's compare-and-set precondition. */
export function expectationHolds(stored: Ownership, request: TransitionRequest): boolean {
  const { expect } = request;
  return (
    stored.status === expect.status && stored.attempt === expect.attempt && (expect.owner === undefined || stored.owner === expect.owner)
  );
}
