import { performance } from 'node:perf_hooks';

/**
 * A wait on the client this long or longer makes a failure of the attempt the client's doing:
 * far above what a client reading or sending at any real speed pauses for, far below the
 * timeouts (60 s in Harbor's nginx) after which a node gives up on it.
 */
export const CLIENT_STALL_MS = 1000;

/** Tracks stretches of waiting on the client: the longest, and the one under way. */
export class StallClock {
  #since: number | undefined;
  #longest = 0;

  begin(): void {
    this.#since ??= performance.now();
  }

  end(): void {
    if (this.#since === undefined) return;
    this.#longest = Math.max(this.#longest, performance.now() - this.#since);
    this.#since = undefined;
  }

  get waiting(): boolean {
    return this.#since !== undefined;
  }

  /** Forgets finished stretches (a small body's wait while it was read up front, before any node). */
  reset(): void {
    this.#longest = 0;
  }

  /** Whether a stretch reached CLIENT_STALL_MS, or one is under way now. */
  stalled(): boolean {
    return this.#since !== undefined || this.#longest >= CLIENT_STALL_MS;
  }
}
