import { spaceOf, type PinSpace } from './pin-spaces.js';
import type { Awaitable } from '../util/awaitable.js';

/**
 * How long a store takes "no pin" for an answer for an anonymous client's key (`get`'s
 * `anonymous`). Such clients are never pinned, and asking the control plane or Redis on each of
 * their requests would make it a hop in the request path.
 */
const ANONYMOUS_MISS_MS = 1_000;

/**
 * Until when a store's near cache may keep "no pin" read for `key`, or undefined when it may not:
 * only an anonymous client's key, for ANONYMOUS_MISS_MS. Any other key is always asked for: a
 * named client's pin may have been made a moment ago elsewhere (right after its login), and
 * upload and session pins are what uploads and UI sessions depend on.
 */
export function missKeptUntil(key: string, anonymous: boolean, now: number): number | undefined {
  return anonymous && spaceOf(key) === 'client' ? now + ANONYMOUS_MISS_MS : undefined;
}

/**
 * Where pins live: memory for one instance, Redis so several instances agree. Keys name their
 * space (`upload:…`, `session:…`, `visitor:…`, `client:…`, see pin-spaces.ts); each space is bounded
 * on its own.
 */
export interface PinStore {
  readonly kind: 'memory' | 'redis';
  /**
   * The value; with `renewMs`, its TTL starts over (a pin in use does not expire under its user).
   * `anonymous`: the key is an anonymous client's, which is never pinned (a store may take a miss
   * for an answer a while). At once (not a promise) when the store has the answer at hand.
   */
  get(key: string, renewMs?: number, anonymous?: boolean): Awaitable<string | undefined>;
  /**
   * Sets the value unless one is there; answers the value that holds afterwards (the first
   * writer's). `owner`: who the pin is for (an upload's user, else its address; a login's address),
   * so a full memory space makes room out of that owner's own pins (pin-owners.ts).
   */
  setIfAbsent(key: string, value: string, ttlMs: number, owner?: string): Promise<string>;
  set(key: string, value: string, ttlMs: number, owner?: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Whether the store is reachable now (always true for memory). */
  connected(): boolean;
  /** Operations that failed (the store did not answer in time, or refused), since start; for /metrics. */
  readonly errors: number;
  /** Entries held, for status. */
  size(): number;
  /** Pins pushed out of a full space to make room, per space, since start (for /metrics). */
  readonly evictions: Readonly<Record<PinSpace, number>>;
  close(): Promise<void>;
}
