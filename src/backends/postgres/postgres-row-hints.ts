import { setNewest } from "./bounded-map.js";

/**
 * Where this process last saw an invocation's row: the ctid its claim left it at. A worker's next
 * write to an invocation is almost always the final write of the attempt it claimed, and with the
 * row's ctid at hand that write reads the row directly instead of walking the primary key to it.
 * A hint is only ever a shortcut: a statement that uses one checks the row it finds as it would
 * any other, and looks the invocation up by id when the hinted version is gone (another session
 * changed the row since) or was never there. Each hint is used once; the oldest are forgotten
 * beyond a bound (a process that claims and never writes, such as a client, keeps no more).
 */
export class RowHints {
  readonly #hints = new Map<string, string>();
  readonly #limit: number;

  constructor(limit = 20_000) {
    this.#limit = limit;
  }

  remember(id: string, ctid: string): void {
    setNewest(this.#hints, id, ctid, this.#limit);
  }

  /** The hint for this invocation, forgotten as it is taken; null when there is none. */
  take(id: string): string | null {
    const ctid = this.#hints.get(id);
    if (ctid === undefined) return null;
    this.#hints.delete(id);
    return ctid;
  }
}
