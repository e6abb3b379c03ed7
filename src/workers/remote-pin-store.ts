import { PIN_SPACES, SpacedLru, type PinSpace } from '../pins/pin-spaces.js';
import { missKeptUntil, type PinStore } from '../pins/pin-store.js';
import { SharedReads } from '../pins/shared-reads.js';
import type { Awaitable } from '../util/awaitable.js';
import type { Clock } from '../util/clock.js';
import type { ControlLink } from './control-link.js';

/** How long a pin read from the control plane is reused in the worker before asking again (as RedisPinStore's near cache). */
const NEAR_CACHE_MS = 5_000;

/**
 * A request worker's view of the memory pin store, which the control plane holds so that every
 * worker agrees (a push whose requests land on different workers stays on one node). Reads the
 * worker made lately are answered from a bounded near cache; a control plane that does not answer
 * in time costs the request its pin, never the request (as with Redis down).
 */
export class RemotePinStore implements PinStore {
  readonly kind = 'memory' as const;
  readonly #near: SpacedLru<{ value: string | undefined; until: number }>;
  readonly #reads = new SharedReads<string | undefined>();
  readonly evictions: Readonly<Record<PinSpace, number>> = Object.fromEntries(PIN_SPACES.map((s) => [s, 0])) as Record<PinSpace, number>;
  errors = 0;

  constructor(
    private readonly link: ControlLink,
    private readonly clock: Clock,
    maxEntries: number,
  ) {
    this.#near = new SpacedLru(maxEntries);
  }

  /** A read's answer kept; "no pin" only as long as missKeptUntil says. */
  #remember(key: string, value: string | undefined, anonymous = false): void {
    if (value === undefined) {
      const until = missKeptUntil(key, anonymous, this.clock.now());
      if (until !== undefined) this.#near.set(key, { value, until });
      else this.#near.delete(key);
      return;
    }
    this.#near.set(key, { value, until: this.clock.now() + NEAR_CACHE_MS });
  }

  get(key: string, renewMs?: number, anonymous = false): Awaitable<string | undefined> {
    const hit = this.#near.get(key);
    if (hit !== undefined && hit.until > this.clock.now()) return hit.value;
    return this.#reads.read(key, (current) => this.#ask(key, renewMs, anonymous, hit, current));
  }

  async #ask(key: string, renewMs: number | undefined, anonymous: boolean, hit: { value: string | undefined } | undefined, current: () => boolean): Promise<string | undefined> {
    const v = await this.link.pin(renewMs === undefined ? { op: 'get', key } : { op: 'get', key, renewMs });
    if (v === undefined) {
      // No answer in time: what was known of the pin is better than nothing.
      this.errors++;
      return hit?.value;
    }
    const value = typeof v === 'string' ? v : undefined;
    if (current()) this.#remember(key, value, anonymous);
    return value;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number, owner?: string): Promise<string> {
    this.#reads.forget(key);
    const v = await this.link.pin(owner === undefined ? { op: 'setIfAbsent', key, value, ttlMs } : { op: 'setIfAbsent', key, value, ttlMs, owner });
    if (typeof v !== 'string') {
      this.errors++;
      return value;
    }
    this.#remember(key, v);
    return v;
  }

  async set(key: string, value: string, ttlMs: number, owner?: string): Promise<void> {
    this.#reads.forget(key);
    this.#remember(key, value);
    const ok = await this.link.pin(owner === undefined ? { op: 'set', key, value, ttlMs } : { op: 'set', key, value, ttlMs, owner });
    if (ok === undefined) this.errors++;
  }

  async delete(key: string): Promise<void> {
    this.#reads.forget(key);
    this.#near.delete(key);
    const ok = await this.link.pin({ op: 'delete', key });
    if (ok === undefined) this.errors++;
  }

  connected(): boolean {
    return true;
  }

  size(): number {
    return this.#near.size;
  }

  async close(): Promise<void> {
    this.#near.clear();
  }
}
