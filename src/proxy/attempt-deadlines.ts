import { errors } from 'undici';
import type { Clock } from '../util/clock.js';
import { TickingSet, type Ticked } from '../util/ticking-set.js';

/** How often the deadlines of the attempts in flight are looked at: a timeout fires up to this much late. */
const TICK_MS = 100;

/**
 * The node's time limits for attempts without a request body, on one timer for all: the head
 * within headersTimeout of the request going out, then no gap of proxy.idleTimeout between body
 * chunks (time the client makes harbor-lb wait does not count). undici's own timers did this
 * with two timer objects per request that live on in its timer list for up to a second after
 * they are cleared: about 200 bytes per request went to V8's old generation, a worker's memory
 * grew by 3.7 MB/s under small GETs until the next full collection. Here a request costs one
 * entry in a set. The errors are undici's, so what follows a timeout is the same.
 */
export class AttemptDeadlines {
  readonly #watched: TickingSet<AttemptDeadline>;

  constructor(
    /** proxy.idleTimeout: the longest gap between two chunks of a node's answer. */
    private readonly idleMs: number,
    /** Monotonic time, as undici's timers were (tests that move an injected clock leave these alone). */
    private readonly clock: Clock,
  ) {
    this.#watched = new TickingSet(clock, TICK_MS, (items) => this.#tick(items));
  }

  /** Watches an attempt from the moment its request goes out: its head is due within `headersMs`. */
  watch(headersMs: number, abort: (err: Error) => void): AttemptDeadline {
    const d = new AttemptDeadline(this, abort, this.clock.now() + headersMs);
    this.#watched.add(d);
    return d;
  }

  /** The head arrived: from now on, gaps in the body count. */
  headed(d: AttemptDeadline): void {
    d.head = false;
    d.until = this.clock.now() + this.idleMs;
  }

  done(d: AttemptDeadline): void {
    this.#watched.delete(d);
  }

  /** Attempts watched now. */
  get size(): number {
    return this.#watched.size;
  }

  stop(): void {
    this.#watched.stop();
  }

  #tick(items: Iterable<AttemptDeadline>): void {
    const now = this.clock.now();
    for (const d of items) {
      if (!d.head && (d.seen || d.paused)) {
        // A chunk came, or harbor-lb itself holds the node back (the client reads slowly): not a gap.
        d.seen = false;
        d.until = now + this.idleMs;
      } else if (now >= d.until) {
        this.#watched.delete(d);
        d.abort(d.head ? new errors.HeadersTimeoutError() : new errors.BodyTimeoutError());
      }
    }
  }
}

/** One attempt's deadline (forward.ts tells it what happens: head, chunks, pauses). */
export class AttemptDeadline implements Ticked {
  head = true;
  tickIndex = -1;
  seen = false;
  paused = false;

  constructor(
    private readonly owner: AttemptDeadlines,
    readonly abort: (err: Error) => void,
    public until: number,
  ) {}

  headed(): void {
    this.owner.headed(this);
  }

  /** A chunk of the answer came (no clock read: the next tick moves the deadline). */
  data(): void {
    this.seen = true;
  }

  done(): void {
    this.owner.done(this);
  }
}
