import type { Clock } from '../util/clock.js';
import type { StateStore } from './state-store.js';

/**
 * The embedded store for a single instance: a Map with a TTL per entry and a bound on entries.
 * Expired entries are dropped when read; when full, the oldest-written entry goes first
 * (Map keeps insertion order and a rewrite moves a key to the end).
 */
export class MemoryStateStore implements StateStore {
  readonly kind = 'memory' as const;
  /** A Map does not fail. */
  readonly errors = 0;
  readonly #map = new Map<string, { value: string; expires: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries: number,
  ) {}

  #live(key: string): string | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.clock.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return e.value;
  }

  #put(key: string, value: string, ttlMs: number): void {
    this.#map.delete(key);
    if (this.#map.size >= this.maxEntries) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, { value, expires: this.clock.now() + ttlMs });
  }

  async get(key: string, renewMs?: number): Promise<string | undefined> {
    const value = this.#live(key);
    if (value !== undefined && renewMs !== undefined) this.#map.get(key)!.expires = this.clock.now() + renewMs;
    return value;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<string> {
    const current = this.#live(key);
    if (current !== undefined) return current;
    this.#put(key, value, ttlMs);
    return value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#put(key, value, ttlMs);
  }

  async delete(key: string): Promise<void> {
    this.#map.delete(key);
  }

  connected(): boolean {
    return true;
  }

  size(): number {
    return this.#map.size;
  }

  async close(): Promise<void> {
    this.#map.clear();
  }
}
