import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * The key a HashedLru stores for `text`: SHA-256, base64url (43 characters). One-shot, with no
 * Hash object: each one's native context is freed only when the collector gets to it, and under
 * bursts of token requests (a lookup per answer) those frees left a worker's malloc arena growing
 * by about 9 MiB over 900,000 hashes, memory it did not give back (docs/benchmarks.md).
 */
export function hashKey(text: string): string {
  return hash('sha256', text, 'base64url');
}

/**
 * A bounded least-recently-used cache whose keys are secrets (bearer tokens, session ids): only
 * their SHA-256 is kept, so a heap dump or a diagnostic listing never shows the secret, and a
 * client sending endless distinct keys only evicts the oldest entries instead of growing memory.
 */
export class HashedLru<V extends {}> {
  readonly #lru: LRUCache<string, V>;

  constructor(max: number) {
    this.#lru = new LRUCache<string, V>({ max });
  }

  get(text: string): V | undefined {
    return this.#lru.get(hashKey(text));
  }

  set(text: string, value: V): void {
    this.#lru.set(hashKey(text), value);
  }

  /** Stores under a key already hashed with hashKey() (what another process learned of the same secret). */
  setHashed(hash: string, value: V): void {
    this.#lru.set(hash, value);
  }

  delete(text: string): void {
    this.#lru.delete(hashKey(text));
  }

  clear(): void {
    this.#lru.clear();
  }

  get size(): number {
    return this.#lru.size;
  }

  get max(): number {
    return this.#lru.max;
  }

  /** The stored keys (hashes), most recently used first: for diagnostics and tests. */
  keys(): string[] {
    return [...this.#lru.keys()];
  }
}
