/**
 * The text of invocations.history entries (migration 3: JSON arrays [status, at, attempt, runner],
 * comma-joined, each written with its leading comma). The server joins an entry from these pieces
 * and the values it has (a claim's attempt, a transition's status, time and attempt): building
 * them with json_build_array cost a measurable share of a claim's and a transition's time there,
 * and sending each whole entry from the client was a share of a worker's.
 */

/** An entry up to its attempt, which the server adds (a claim knows it only there). */
export function historyHead(status: string, at: number): string {
  return `,[${JSON.stringify(status)},${at},`;
}

/** What follows the attempt. */
export function historyTail(runnerId: string | null): string {
  return `,${entryRunner(runnerId)}]`;
}

/** The first entry (no leading comma) up to its time, which the server adds per row. */
export function firstEntryHead(status: string): string {
  return `[${JSON.stringify(status)},`;
}

/**
 * The runner of an entry as its JSON text (null for a client), as a transition batch sends it for
 * the server to join into each entry. The same few ids come back in every batch of a process, so
 * they are kept once made.
 */
export function entryRunner(runnerId: string | null): string {
  if (runnerId === null) return "null";
  let json = RUNNER_JSON.get(runnerId);
  if (json === undefined) {
    json = JSON.stringify(runnerId);
    if (RUNNER_JSON.size < RUNNER_JSON_KEPT) RUNNER_JSON.set(runnerId, json);
  }
  return json;
}

const RUNNER_JSON = new Map<string, string>();
const RUNNER_JSON_KEPT = 1000;
