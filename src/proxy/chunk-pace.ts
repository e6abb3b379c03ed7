import type { Clock } from '../util/clock.js';

/** A piece of request body smaller than this is a small one. */
export const SMALL_PIECE = 1024;
/** Small pieces one client's bodies may bring per window before harbor-lb stops reading them for the rest of the window. */
export const SMALL_PIECES_PER_WINDOW = 4096;
export const PACE_WINDOW_MS = 1000;

/** One client's small pieces in the current window, shared by its requests under way. */
interface Allowance {
  windowStart: number;
  small: number;
  requests: number;
}

/**
 * How fast one client's request bodies may come in small pieces. node:http hands each chunk of a
 * chunked body (and each short socket read) over as one 'data' event, and each costs the worker a
 * few microseconds whatever its size: a client sending 1-byte chunks for 6 s kept a worker busy
 * for 10 s, and other clients' small GETs took 0.7 s instead of 2 ms (paced: 0.6 s of CPU and
 * 2 ms). The allowance is the client's, not the request's: one per connection would let a client
 * buy more with more connections. docker, podman, skopeo and curl send 16 KiB and more at a time,
 * and a slow producer's small pieces come far slower than this allows: neither ever waits here.
 */
export class ChunkPacing {
  readonly #clients = new Map<string, Allowance>();
  #swept: number;

  constructor(private readonly clock: Clock) {
    this.#swept = clock.now();
  }

  /** The pace of one request's body from `client` (its address, as its routing line names it). */
  start(client: string): ChunkPace {
    const now = this.clock.now();
    if (Math.abs(now - this.#swept) >= PACE_WINDOW_MS) this.#sweep(now);
    let allowance = this.#clients.get(client);
    if (allowance === undefined) this.#clients.set(client, (allowance = { windowStart: now, small: 0, requests: 0 }));
    allowance.requests++;
    return new ChunkPace(this.clock, allowance, () => {
      // Kept while its window lasts if it holds small pieces: a client's next request, on the
      // same connection or another, must not start from a new allowance.
      if (--allowance.requests === 0 && allowance.small === 0) this.#clients.delete(client);
    });
  }

  /** Forgets the clients with no request under way whose window is over (once a window, not per request). */
  #sweep(now: number): void {
    this.#swept = now;
    for (const [client, a] of this.#clients) {
      const into = now - a.windowStart;
      if (a.requests === 0 && (into >= PACE_WINDOW_MS || into < 0)) this.#clients.delete(client);
    }
  }

  /** Clients remembered: with a request under way, or small pieces in the current window. For tests. */
  get clients(): number {
    return this.#clients.size;
  }
}

export class ChunkPace {
  #done = false;

  constructor(
    readonly clock: Clock,
    private readonly allowance: Allowance,
    private readonly onDone: () => void,
  ) {}

  /** One piece of `bytes` came: how long to wait before reading more, 0 to read on. */
  took(bytes: number): number {
    if (bytes >= SMALL_PIECE) return 0;
    const a = this.allowance;
    const now = this.clock.now();
    const into = now - a.windowStart;
    // A clock stepped back starts a new window too: a wait is never longer than one.
    if (into >= PACE_WINDOW_MS || into < 0) {
      a.windowStart = now;
      a.small = 0;
    }
    if (++a.small <= SMALL_PIECES_PER_WINDOW) return 0;
    return Math.max(1, PACE_WINDOW_MS - (now - a.windowStart));
  }

  /** The request is over: its client's allowance is forgotten once none of its requests is under way and its second is over. */
  done(): void {
    if (this.#done) return;
    this.#done = true;
    this.onDone();
  }
}
