/**
 * Counts by key that live only while above zero, but for the last key to come down to zero: its
 * entry is kept, at 0, until another key comes down to zero (at most one such entry). A Map that a
 * delete leaves empty is shrunk by V8 (a call into its runtime and a new table), and grown again
 * by the next set: a client alone on a pool paid both per request.
 */
export class LiveCounts {
  readonly #counts = new Map<string, number>();
  /** The key kept at 0, if any. */
  #resting: string | undefined;

  /** Entries now: the keys above zero, and at most one at zero. */
  get size(): number {
    return this.#counts.size;
  }

  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** One more for `key`; returns its count now. */
  add(key: string): number {
    const n = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, n);
    if (this.#resting === key) this.#resting = undefined;
    return n;
  }

  /** One less for `key` (nothing when it has none). */
  remove(key: string): void {
    const n = this.#counts.get(key);
    if (n === undefined || n === 0) return;
    if (n > 1) {
      this.#counts.set(key, n - 1);
      return;
    }
    if (this.#resting !== undefined) this.#counts.delete(this.#resting);
    this.#counts.set(key, 0);
    this.#resting = key;
  }
}
