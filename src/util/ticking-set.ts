import type { Clock, Timer } from './clock.js';

/**
 * A set of things watched on one timer for all, which ticks only while the set holds something:
 * many requests in flight cost one timer, and an idle process none.
 */
export class TickingSet<T> {
  readonly items = new Set<T>();
  #timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly tickMs: number,
    private readonly tick: (items: Set<T>) => void,
  ) {}

  /** Watches `item` until the returned function is called (or tick() deletes it). */
  add(item: T): () => void {
    this.items.add(item);
    this.#arm();
    return () => void this.items.delete(item);
  }

  stop(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.items.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.items.size === 0) return;
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined;
      this.tick(this.items);
      this.#arm();
    }, this.tickMs);
    this.#timer.unref?.();
  }
}
