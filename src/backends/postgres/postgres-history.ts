import { escapedText } from "./postgres-arrays.js";

/**
 * The text of invocations.history entries (migration 3: JSON arrays [status, at, attempt, runner],
 * comma-joined, each written with its leading comma). The client writes them: building them on the
 * server with json_build_array cost a measurable share of a claim's and a transition's time there.
 */

/** How a string goes into an entry: as JSON text, or as that text escaped for an array literal. */
type JsonString = (text: string) => string;

/** A whole entry, with its leading comma, as an element of an array literal (quoted and escaped). */
export function historyEntryElement(status: string, at: number, attempt: number, runnerId: string | null): string {
  return `"${historyHead(status, at, escapedJson)}${attempt}${historyTail(runnerId, escapedJson)}"`;
}

/** An entry up to its attempt, which the server adds (a claim knows it only there). */
export function historyHead(status: string, at: number, json: JsonString = JSON.stringify): string {
  return `,[${json(status)},${at},`;
}

/** What follows the attempt. */
export function historyTail(runnerId: string | null, json: JsonString = JSON.stringify): string {
  return `,${runnerId === null ? "null" : json(runnerId)}]`;
}

/** The first entry (no leading comma) up to its time, which the server adds per row. */
export function firstEntryHead(status: string): string {
  return `[${JSON.stringify(status)},`;
}

/**
 * A JSON string as it goes inside an array literal's element. The same few strings (statuses, this
 * process's runner ids) come back in every entry, so they are kept once made.
 */
const ESCAPED_JSON = new Map<string, string>();
const ESCAPED_JSON_KEPT = 1000;

function escapedJson(text: string): string {
  let escaped = ESCAPED_JSON.get(text);
  if (escaped === undefined) {
    escaped = escapedText(JSON.stringify(text));
    if (ESCAPED_JSON.size < ESCAPED_JSON_KEPT) ESCAPED_JSON.set(text, escaped);
  }
  return escaped;
}
