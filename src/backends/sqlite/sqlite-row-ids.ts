/**
 * Row numbers (seq) of invocations this process claimed, by id. A transition then finds its row
 * by rowid, on the few table pages its batch shares, instead of through the id index, whose
 * leaves are as scattered as the random ids are. Only a hint: a transition by seq also checks the
 * id, and falls back to the id when it finds nothing (after a purge, say).
 */
export class SqliteRowIds {
  readonly #seqs = new Map<string, number>();
  readonly #max: number;

  constructor(max = 20_000) {
    this.#max = max;
  }

  remember(id: string, seq: number): void {
    this.#seqs.set(id, seq);
    if (this.#seqs.size > this.#max) {
      // Maps iterate in insertion order: the first key is the oldest.
      const oldest = this.#seqs.keys().next().value;
      if (oldest !== undefined) this.#seqs.delete(oldest);
    }
  }

  seqOf(id: string): number | undefined {
    return this.#seqs.get(id);
  }

  clear(): void {
    this.#seqs.clear();
  }
}
