import type { Clock } from '../util/clock.js';
import { SpacedLru, type PinSpace } from './pin-spaces.js';
import type { PinStore } from './pin-store.js';

/**
 * The embedded store for a single instance: pins with a TTL each, in bounded spaces per kind
 * (pin-spaces.ts), so client pins can never push out upload or session pins. Expired entries are
 * dropped when read; a full space drops its least recently used pin (reading a pin uses it).
 */
export class MemoryPinStore implements PinStore {
  readonly kind = 'memory' as const;
  /** A Map does not fail. */
  readonly errors = 0;
  readonly #pins: SpacedLru<{ value: string; expires: number }>;

  constructor(
    private readonly clock: Clock,
    /** The bound of each space (sticky.maxEntries). */
    maxEntries: number,
  ) {
    this.#pins = new SpacedLru(maxEntries);
  }

  get evictions(): Readonly<Record<PinSpace, number>> {
    return this.#pins.evictions;
  }

  #live(key: string): string | undefined {
    const e = this.#pins.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.clock.now()) {
      this.#pins.delete(key);
      return undefined;
    }
    return e.value;
  }

  get(key: string, renewMs?: number): string | undefined {
    const value = this.#live(key);
    if (value !== undefined && renewMs !== undefined) this.#pins.peek(key)!.expires = this.clock.now() + renewMs;
    return value;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<string> {
    const current = this.#live(key);
    if (current !== undefined) return current;
    this.#pins.set(key, { value, expires: this.clock.now() + ttlMs });
    return value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#pins.set(key, { value, expires: this.clock.now() + ttlMs });
  }

  async delete(key: string): Promise<void> {
    this.#pins.delete(key);
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
  }
}
