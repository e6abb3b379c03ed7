import { performance } from 'node:perf_hooks';

/**
 * A wait on the client this long or longer makes a failure of the attempt the client's doing:
 * far above what a client reading or sending at any real speed pauses for, far below the
 * timeouts (60 s in Harbor's nginx) after which a node gives up on it.
 */
export const CLIENT_STALL_MS = 1000;

/** performance.now(), one function for every clock (a default written inline is a closure per clock made). */
const monotonicNow = (): number => performance.now();

/** Tracks stretches of waiting on the client: the longest, and the one under way. */
export class StallClock {
  #since: number | undefined;
  #longest = 0;

  constructor(private readonly now: () => number = monotonicNow) {}

  begin(): void {
    this.#since ??= this.now();
  }

  end(): void {
    if (this.#since === undefined) return;
    this.#longest = Math.max(this.#longest, this.now() - this.#since);
    this.#since = undefined;
  }

  get waiting(): boolean {
    return this.#since !== undefined;
  }

  /** Forgets finished stretches (a small body's wait while it was read up front, before any node). */
  reset(): void {
    this.#longest = 0;
  }

  /**
   * Whether a stretch reached CLIENT_STALL_MS, the one under way included. A short wait under way
   * is no stall: streaming waits on the client between any two chunks, and a node that dies
   * then is the node's failure (a node gives up on a client only after a long silence).
   */
  stalled(): boolean {
    const current = this.#since === undefined ? 0 : this.now() - this.#since;
    return Math.max(current, this.#longest) >= CLIENT_STALL_MS;
  }
}
