import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log/loggers.js';
import { andThen, type Awaitable } from '../util/awaitable.js';
import type { Clock } from '../util/clock.js';
import { SpacedLru, spaceOf, type PinSpace } from './pin-spaces.js';
import { MemoryPinStore } from './memory-pin-store.js';
import { missKeptUntil, type PinStore } from './pin-store.js';
import { SharedReads } from './shared-reads.js';

export interface RedisPinStoreOptions {
  url: string;
  keyPrefix: string;
  sentinels?: Array<{ host: string; port: number }>;
  /** Sentinel master name. */
  name?: string;
  /** Bound on every command; past it the request routes without Redis. */
  timeout: number;
  /** How long a pin read from Redis is reused locally before asking again. */
  nearCacheTtl: number;
  nearCacheMax: number;
  /** The most keys of each pin space this instance keeps written in Redis (sticky.maxEntries). */
  maxEntries: number;
  /**
   * Whether this process says the instance's Redis events at their level (`redis_down` a warning):
   * not a request worker, whose connection to Redis shares the control plane's fate, so an outage
   * is logged once per instance; a worker says them at debug.
   */
  speaksForInstance: boolean;
}

const BREAKER_OPEN_MS = 5_000;
/** After Redis is back, how long a key it lacks is looked for in the memory store too, while the pins made meanwhile go into Redis. */
const LOOK_ASIDE_MS = 10_000;
/** Pins written to Redis per round trip when it is back. */
const RESTORE_BATCH = 500;
const FAILURES_TO_OPEN = 3;

/**
 * Pins in Redis, so several harbor-lb instances agree. Redis never adds more than `timeout` to a
 * request and nothing while it is down: commands are not queued while disconnected, each is
 * bounded, and after a few failures a breaker skips Redis for a while. A bounded near cache
 * answers repeated reads of one key locally, "no pin" for an anonymous client included for a
 * second (missKeptUntil), and reads of a key that miss it together share one command. An
 * outage is logged once when it starts and once when it ends.
 *
 * While Redis cannot be used, pins are read and written in `fallback`: this instance's memory
 * store, which a request worker reaches through the control plane, so every worker of the
 * instance keeps agreeing (a push whose requests land on different workers stays on its node).
 * When Redis is back, the store that holds that memory (the control plane's, or a single
 * process's) writes the pins made meanwhile into Redis, where no other instance wrote the key
 * (SET NX, with the time each had left), and forgets them; for LOOK_ASIDE_MS meanwhile a key Redis
 * lacks is looked for in the memory too. So an upload begun during the outage keeps its node, and
 * other instances see its pin.
 *
 * Redis holds what it is given until the TTL ends, so its key count grows with the write rate
 * times the TTL. Upload, session and client pins are written only for work a node accepted from
 * an authenticated client (pins.ts), so no anonymous flood adds any; they are never deleted here,
 * as another instance may be using one (an upload continued through it). Visitor pins, which any
 * anonymous visit causes, are kept in a ledger of the keys this instance wrote, bounded like the
 * memory store: a key pushed out of it is deleted in Redis, so Redis holds at most `maxEntries`
 * visitor keys per instance whatever the rate of visits.
 */
export class RedisPinStore implements PinStore {
  readonly kind = 'redis' as const;
  readonly #client: Redis;
  /**
   * Pins read lately, least recently used evicted first, bounded per space so a flood of client
   * pins cannot push out the upload pins that routing relies on while Redis is down. The keys hold
   * no secret in clear (session ids are hashed into them).
   */
  readonly #near: SpacedLru<{ value: string | undefined; until: number }>;
  readonly #reads = new SharedReads<string | undefined>();
  /** Visitor keys this instance wrote, least recently used first. */
  readonly #visitors: SpacedLru<true>;
  /** Commands that failed since start (#failures resets; this does not). */
  errors = 0;
  #failures = 0;
  #openUntil = 0;
  #outage = false;
  /** Pins were written to the fallback store since Redis was last usable. */
  #aside = false;
  /** Until when a key Redis lacks is looked for in the fallback store (pins written there are on their way into Redis). */
  #lookAsideUntil = 0;
  #everReady = false;

  constructor(
    private readonly o: RedisPinStoreOptions,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Where pins go while Redis cannot be used: the instance's memory store. */
    private readonly fallback: PinStore,
  ) {
    this.#near = new SpacedLru(o.nearCacheMax);
    this.#visitors = new SpacedLru(o.maxEntries, (key) => void this.#drop(key));
    const common: RedisOptions = {
      keyPrefix: o.keyPrefix,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: o.timeout,
      connectTimeout: Math.max(o.timeout, 1000),
      // Keep trying to come back, never faster than every 200 ms nor slower than every 2 s.
      retryStrategy: (times) => Math.min(200 * times, 2000),
      lazyConnect: false,
      // After disconnect(), how long a socket may stay half-closed before ioredis destroys it. A
      // close() during the connect handshake makes ioredis arm this timer on the dead socket too
      // (its ready check fails and disconnects again); its 2 s default would hold the process.
      disconnectTimeout: 200,
    };
    this.#client = o.sentinels
      ? new Redis({ ...common, sentinels: o.sentinels, name: o.name ?? 'mymaster', ...credentialsOf(o.url) })
      : new Redis(o.url, common);
    this.#client.on('error', (err: Error) => this.#down(err.message));
    this.#client.on('ready', () => this.#up());
  }

  #say(level: 'warn' | 'info', fields: Record<string, unknown>, msg: string): void {
    this.logger[this.o.speaksForInstance ? level : 'debug'](fields, msg);
  }

  #usable(): boolean {
    return this.#client.status === 'ready' && this.clock.now() >= this.#openUntil;
  }

  #down(why: string): void {
    if (!this.#outage) {
      this.#outage = true;
      this.#say('warn', { event: 'redis_down', reason: why }, `sticky store Redis unavailable (${why}): pins kept in this instance's memory meanwhile, other keys routed by rendezvous hashing`);
    }
  }

  #up(): void {
    this.#failures = 0;
    this.#openUntil = 0;
    if (!this.#everReady && this.#client.status === 'ready') {
      this.#everReady = true;
      this.#say('info', { event: 'redis_connected' }, 'sticky store Redis connected: pins are shared between instances');
    }
    if (this.#outage) {
      this.#outage = false;
      this.#say('info', { event: 'redis_up' }, 'sticky store Redis is back: pins are shared again');
    }
    if (this.#aside) {
      this.#aside = false;
      this.#lookAsideUntil = this.clock.now() + LOOK_ASIDE_MS;
      if (this.fallback instanceof MemoryPinStore) void this.#restore(this.fallback);
    }
  }

  /** The pins made while Redis was away, into Redis where no other instance wrote the key since. */
  async #restore(memory: MemoryPinStore): Promise<void> {
    // Each pin leaves memory once Redis has it: reads looking aside meanwhile still find it.
    const pins = memory.live();
    try {
      for (let i = 0; i < pins.length; i += RESTORE_BATCH) {
        const batch = this.#client.pipeline();
        const some = pins.slice(i, i + RESTORE_BATCH);
        for (const p of some) batch.set(p.key, p.value, 'PX', p.ttlMs, 'NX');
        for (const [err] of (await batch.exec()) ?? []) if (err) throw err;
        for (const p of some) {
          this.#wrote(p.key);
          await memory.delete(p.key);
        }
      }
      if (pins.length > 0) this.#say('info', { event: 'redis_pins_restored', pins: pins.length }, `${pins.length} pin(s) made while Redis was away written to it`);
    } catch (err) {
      // Redis went away again: what is left waits in memory for its next return.
      this.#aside = true;
      this.#failed(err);
    }
  }

  #failed(err: unknown): void {
    this.errors++;
    if (++this.#failures >= FAILURES_TO_OPEN) {
      this.#openUntil = this.clock.now() + BREAKER_OPEN_MS;
      this.#failures = 0;
    }
    this.#down((err as Error).message);
  }

  #ok(): void {
    this.#failures = 0;
    if (this.#outage) this.#up();
  }

  get evictions(): Readonly<Record<PinSpace, number>> {
    return this.#visitors.evictions;
  }

  /** A key written by this instance: a visitor key is recorded in the ledger (which may push an older one out). */
  #wrote(key: string): void {
    if (spaceOf(key) === 'visitor') this.#visitors.set(key, true);
  }

  /** A key gone from the near cache and from Redis (a visitor key pushed out of the ledger comes here too). */
  async #drop(key: string): Promise<void> {
    this.#reads.forget(key);
    this.#near.delete(key);
    if (!this.#usable()) return void this.fallback.delete(key);
    try {
      await this.#client.del(key);
    } catch (err) {
      this.#failed(err);
    }
  }

  #remember(key: string, value: string): void {
    this.#near.set(key, { value, until: this.clock.now() + this.o.nearCacheTtl });
  }

  get(key: string, renewMs?: number, anonymous = false): Awaitable<string | undefined> {
    const hit = this.#near.get(key);
    if (hit && hit.until > this.clock.now()) return hit.value;
    if (!this.#usable()) return this.#fromFallback(key, renewMs, anonymous, hit);
    return this.#reads.read(key, (current) => this.#fetch(key, renewMs, anonymous, hit, current));
  }

  /** The fallback store's pin, else one read from Redis before it went away. */
  #fromFallback(key: string, renewMs: number | undefined, anonymous: boolean, hit: { value: string | undefined } | undefined): Awaitable<string | undefined> {
    return andThen(this.fallback.get(key, renewMs, anonymous), (v) => v ?? hit?.value);
  }

  async #fetch(key: string, renewMs: number | undefined, anonymous: boolean, hit: { value: string | undefined } | undefined, current: () => boolean): Promise<string | undefined> {
    try {
      // GETEX renews in the same round trip; the near cache means at most one renewal per key per nearCacheTtl.
      const v = renewMs === undefined ? await this.#client.get(key) : await this.#client.getex(key, 'PX', renewMs);
      this.#ok();
      // A write to the key came after this read was sent: its answer may be older than the write.
      if (!current()) return v ?? undefined;
      if (v !== null) {
        this.#remember(key, v);
        // A pin in use is the last one the ledger pushes out.
        if (renewMs !== undefined) this.#visitors.get(key);
        return v;
      }
      // Not in Redis, but perhaps written aside while it was away (an anonymous client never is).
      const aside = !anonymous && this.#lookAsideUntil > this.clock.now() ? await this.fallback.get(key, renewMs) : undefined;
      if (!current()) return aside;
      if (aside !== undefined) {
        this.#remember(key, aside);
        return aside;
      }
      const until = missKeptUntil(key, anonymous, this.clock.now());
      if (until !== undefined) this.#near.set(key, { value: undefined, until });
      else this.#near.delete(key);
      this.#visitors.delete(key);
      return undefined;
    } catch (err) {
      this.#failed(err);
      return this.#fromFallback(key, renewMs, anonymous, hit);
    }
  }

  async setIfAbsent(key: string, value: string, ttlMs: number, owner?: string): Promise<string> {
    this.#reads.forget(key);
    if (!this.#usable()) return this.#setIfAbsentAside(key, value, ttlMs, owner);
    try {
      const set = await this.#client.set(key, value, 'PX', ttlMs, 'NX');
      if (set === 'OK') this.#wrote(key);
      const winner = set === 'OK' ? value : ((await this.#client.get(key)) ?? value);
      this.#ok();
      this.#remember(key, winner);
      return winner;
    } catch (err) {
      this.#failed(err);
      return this.#setIfAbsentAside(key, value, ttlMs, owner);
    }
  }

  async #setIfAbsentAside(key: string, value: string, ttlMs: number, owner: string | undefined): Promise<string> {
    this.#aside = true;
    const winner = await this.fallback.setIfAbsent(key, value, ttlMs, owner);
    this.#remember(key, winner);
    return winner;
  }

  async set(key: string, value: string, ttlMs: number, owner?: string): Promise<void> {
    this.#reads.forget(key);
    this.#remember(key, value);
    if (!this.#usable()) return this.#setAside(key, value, ttlMs, owner);
    try {
      await this.#client.set(key, value, 'PX', ttlMs);
      this.#wrote(key);
      this.#ok();
    } catch (err) {
      this.#failed(err);
      await this.#setAside(key, value, ttlMs, owner);
    }
  }

  #setAside(key: string, value: string, ttlMs: number, owner: string | undefined): Promise<void> {
    this.#aside = true;
    return this.fallback.set(key, value, ttlMs, owner);
  }

  async delete(key: string): Promise<void> {
    this.#visitors.delete(key);
    await this.#drop(key);
  }

  connected(): boolean {
    return this.#client.status === 'ready';
  }

  /** Pins held in this instance's near cache (Redis itself is shared and not counted here). */
  size(): number {
    return this.#near.size;
  }

  /** Stops reconnecting and resolves once the connection is closed, so nothing of it outlives close(). */
  async close(): Promise<void> {
    // With a socket open or opening, 'end' follows disconnect(); otherwise (ended, or between
    // reconnect attempts) disconnect() only cancels the next attempt and no event comes.
    const open = this.#client.status === 'ready' || this.#client.status === 'connect' || this.#client.status === 'connecting';
    const ended = open ? new Promise<void>((resolve) => this.#client.once('end', () => resolve())) : undefined;
    this.#client.disconnect();
    await Promise.all([ended, this.fallback.close()]);
  }
}

/** Password (and user) from a redis:// URL, for Sentinel set-ups where the URL names no single host. */
function credentialsOf(url: string): { username?: string; password?: string; db?: number; tls?: object } {
  const u = new URL(url);
  return {
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}
