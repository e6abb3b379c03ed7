/**
 * Reads of a pin on their way to a store (the control plane, Redis), shared by the requests that
 * miss the near cache meanwhile: one question per key at a time. Otherwise, each time a near
 * cache entry expired, every request for that key arriving within the round trip asked again (an
 * anonymous client's "no pin": about 15 a second per busy worker).
 */
export class SharedReads<V> {
  readonly #pending = new Map<string, Promise<V>>();

  /**
   * The read of `key` on its way, or the one `read` starts. `read` is given `current`, true while
   * no write to the key came after it: only then may its answer be kept in a near cache.
   */
  read(key: string, read: (current: () => boolean) => Promise<V>): Promise<V> {
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const answer: Promise<V> = read(() => this.#pending.get(key) === answer).finally(() => {
      if (this.#pending.get(key) === answer) this.#pending.delete(key);
    });
    this.#pending.set(key, answer);
    return answer;
  }

  /**
   * A write to `key`: a read sent before it is no answer for a read after it, and its answer is
   * not kept (it may predate the write).
   */
  forget(key: string): void {
    this.#pending.delete(key);
  }
}
