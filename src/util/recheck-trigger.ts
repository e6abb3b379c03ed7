import type { Clock, Timer } from './clock.js';

interface KeyState {
  running: boolean;
  lastRun: number;
  /** Asked again while running or within the spacing: one more run is owed. */
  owed: boolean;
  timer: Timer | undefined;
}

/**
 * Runs `action(key)` on request, at once the first time, and never more often than once per
 * `spacing` per key, nor twice at a time: requests that come meanwhile are folded into one run at
 * the end of the spacing. Traffic asks harbor-lb to look at a node through this (HAProxy's
 * `on-error fastinter`), so no rate of client requests turns into a rate of probes.
 */
export class RecheckTrigger<K> {
  readonly #keys = new Map<K, KeyState>();
  #stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly spacing: number,
    private readonly action: (key: K) => Promise<unknown>,
  ) {}

  /** Asks for a run for `key`; returns at once. */
  request(key: K): void {
    if (this.#stopped) return;
    let s = this.#keys.get(key);
    if (s === undefined) this.#keys.set(key, (s = { running: false, lastRun: -Infinity, owed: false, timer: undefined }));
    if (s.running || s.timer !== undefined) {
      s.owed = true;
      return;
    }
    const wait = s.lastRun + this.spacing - this.clock.now();
    if (wait > 0) {
      s.owed = true;
      this.#arm(key, s, wait);
      return;
    }
    void this.#run(key, s);
  }

  /** Whether a run for `key` is under way or owed. */
  pending(key: K): boolean {
    const s = this.#keys.get(key);
    return s !== undefined && (s.running || s.owed);
  }

  /** The key is gone (a node left the set): nothing more runs for it. */
  forget(key: K): void {
    const s = this.#keys.get(key);
    if (s?.timer) this.clock.clearTimeout(s.timer);
    this.#keys.delete(key);
  }

  stop(): void {
    this.#stopped = true;
    for (const s of this.#keys.values()) if (s.timer) this.clock.clearTimeout(s.timer);
    this.#keys.clear();
  }

  #arm(key: K, s: KeyState, ms: number): void {
    s.timer = this.clock.setTimeout(() => {
      s.timer = undefined;
      if (this.#stopped || this.#keys.get(key) !== s || !s.owed) return;
      void this.#run(key, s);
    }, Math.max(1, ms));
    s.timer.unref?.();
  }

  async #run(key: K, s: KeyState): Promise<void> {
    s.running = true;
    s.owed = false;
    s.lastRun = this.clock.now();
    try {
      await this.action(key);
    } catch {
      // The action reports its own failures; a throw must not stop later runs.
    } finally {
      s.running = false;
      if (s.owed && !this.#stopped && this.#keys.get(key) === s) this.#arm(key, s, s.lastRun + this.spacing - this.clock.now());
    }
  }
}
