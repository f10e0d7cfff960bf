/**
 * Row numbers (seq) of invocations this process claimed, by id. A transition then finds its row
 * by rowid, on the few table pages its batch shares, instead of through the id index, whose
 * leaves are as scattered as the random ids are. Only a hint: a transition by seq also checks the
 * id, and falls back to the id when it finds nothing (after a purge, say).
 */
/** Ids remembered at most: a few batches' worth of a busy worker. */
const MAX_HINTS = 4096;

export class SqliteRowIds {
  readonly #seqs = new Map<string, number>();

  remember(id: string, seq: number): void {
    // Past the limit start over: the ones dropped are found by id, as if never claimed here.
    if (this.#seqs.size >= MAX_HINTS) this.#seqs.clear();
    this.#seqs.set(id, seq);
  }

  seqOf(id: string): number | undefined {
    return this.#seqs.get(id);
  }

  clear(): void {
    this.#seqs.clear();
  }
}
