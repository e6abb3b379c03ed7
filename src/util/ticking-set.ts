import type { Clock, Timer } from './clock.js';

/** What a TickingSet holds: it keeps the item's place in its array here (-1: not held; start with -1). */
export interface Ticked {
  tickIndex: number;
}

/**
 * A set of things watched on one timer for all, which ticks only while the set holds something:
 * many requests in flight cost one timer, and an idle process none.
 *
 * An array with each item's index on the item, not a JS Set: a Set that is added to and deleted
 * from per request is rehashed into a new table as its size swings, and V8 leaves each old table
 * pointing at its successor with its entries still in it. Once one such table had been promoted
 * to the old generation, every young-generation collection took the tables after it, and the
 * requests their entries hold, for live: whole requests (about 6 KiB each) were promoted until
 * the next full collection, 50 MB/s under small GETs, in about half of the runs (--trace-gc-nvp).
 */
export class TickingSet<T extends Ticked> {
  readonly #items: T[] = [];
  #timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly tickMs: number,
    /** Given what is held when the timer fires; it may delete from the set as it goes. */
    private readonly tick: (items: Iterable<T>) => void,
  ) {}

  /** Watches `item` until the returned function is called (or it is deleted). */
  add(item: T): () => void {
    // The index lives on the item: it can be held once, by one set.
    if (item.tickIndex !== -1) throw new Error('TickingSet: the item is already held');
    item.tickIndex = this.#items.length;
    this.#items.push(item);
    this.#arm();
    return () => this.delete(item);
  }

  /** Stops watching `item` (nothing if it is not held). */
  delete(item: T): void {
    const i = item.tickIndex;
    if (i < 0 || this.#items[i] !== item) return;
    const last = this.#items.pop()!;
    if (last !== item) {
      this.#items[i] = last;
      last.tickIndex = i;
    }
    item.tickIndex = -1;
  }

  has(item: T): boolean {
    return item.tickIndex >= 0 && this.#items[item.tickIndex] === item;
  }

  get size(): number {
    return this.#items.length;
  }

  /**
   * What is held now, each item given only if it is still held when reached: whoever iterates may
   * delete any item (itself or others, through what it calls) as it goes.
   */
  *held(): Generator<T> {
    for (const item of this.#items.slice()) if (this.has(item)) yield item;
  }

  stop(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const item of this.#items) item.tickIndex = -1;
    this.#items.length = 0;
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#items.length === 0) return;
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined;
      this.tick(this.held());
      this.#arm();
    }, this.tickMs);
    this.#timer.unref?.();
  }
}
