import type { Clock } from '../util/clock.js';
import { PinOwners } from './pin-owners.js';
import { SpacedLru, spaceOf, type PinSpace } from './pin-spaces.js';
import type { PinStore } from './pin-store.js';

/**
 * The embedded store for a single instance: pins with a TTL each, in bounded spaces per kind
 * (pin-spaces.ts), so client pins can never push out upload or session pins. Expired entries are
 * dropped when read; a full space drops its least recently used pin (reading a pin uses it), but
 * for an upload or session pin written with its owner, one of that owner's own when it holds any
 * (pin-owners.ts): no client's flood pushes out more than one pin of another client's.
 */
export class MemoryPinStore implements PinStore {
  readonly kind = 'memory' as const;
  /** A Map does not fail. */
  readonly errors = 0;
  readonly #pins: SpacedLru<{ value: string; expires: number }>;
  readonly #owners = new PinOwners();

  constructor(
    private readonly clock: Clock,
    /** The bound of each space (sticky.maxEntries). */
    private readonly maxEntries: number,
  ) {
    this.#pins = new SpacedLru(maxEntries, (key) => this.#owners.remove(key));
  }

  get evictions(): Readonly<Record<PinSpace, number>> {
    return this.#pins.evictions;
  }

  #live(key: string): string | undefined {
    const e = this.#pins.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.clock.now()) {
      this.#drop(key);
      return undefined;
    }
    return e.value;
  }

  get(key: string, renewMs?: number): string | undefined {
    const value = this.#live(key);
    if (value !== undefined && renewMs !== undefined) this.#pins.peek(key)!.expires = this.clock.now() + renewMs;
    if (value !== undefined) this.#owners.touch(key);
    return value;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number, owner?: string): Promise<string> {
    const current = this.#live(key);
    if (current !== undefined) return current;
    this.#write(key, value, ttlMs, owner);
    return value;
  }

  async set(key: string, value: string, ttlMs: number, owner?: string): Promise<void> {
    this.#write(key, value, ttlMs, owner);
  }

  async delete(key: string): Promise<void> {
    this.#drop(key);
  }

  #write(key: string, value: string, ttlMs: number, owner: string | undefined): void {
    if (owner === undefined) this.#owners.remove(key);
    else {
      const space = spaceOf(key);
      if (PinOwners.owned(space) && this.#pins.peek(key) === undefined && this.#pins.sizeOf(space) >= this.maxEntries) this.#makeRoom(space, owner);
      this.#owners.add(key, owner);
    }
    this.#pins.set(key, { value, expires: this.clock.now() + ttlMs });
  }

  /**
   * Room in a full upload or session space for `owner`'s new pin, before the write would push out
   * the least recently used: that one if it expired, else the owner's own least recently used pin
   * when it holds one (PinOwners), else (it holds none) the least recently used after all.
   */
  #makeRoom(space: PinSpace, owner: string): void {
    const oldest = this.#pins.oldest(space);
    if (oldest !== undefined && oldest[1].expires <= this.clock.now()) return this.#drop(oldest[0]);
    const own = this.#owners.victim(space, owner);
    if (own !== undefined) this.#pins.evict(own);
  }

  /** Every live pin with the time it has left (they go into Redis once it is back: RedisPinStore). */
  live(): Array<{ key: string; value: string; ttlMs: number }> {
    const now = this.clock.now();
    const out: Array<{ key: string; value: string; ttlMs: number }> = [];
    for (const [key, e] of this.#pins.entries()) if (e.expires > now) out.push({ key, value: e.value, ttlMs: e.expires - now });
    return out;
  }

  #drop(key: string): void {
    this.#pins.delete(key);
    this.#owners.remove(key);
  }

  connected(): boolean {
    return true;
  }

  size(): number {
    return this.#pins.size;
  }

  sizeOf(space: PinSpace): number {
    return this.#pins.sizeOf(space);
  }

  async close(): Promise<void> {
    this.#pins.clear();
    this.#owners.clear();
  }
}
