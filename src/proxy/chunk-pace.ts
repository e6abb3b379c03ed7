import type { Clock } from '../util/clock.js';

/** A piece of request body smaller than this is a small one. */
export const SMALL_PIECE = 1024;
/** Small pieces one request's body may bring per window before harbor-lb stops reading it for the rest of the window. */
export const SMALL_PIECES_PER_WINDOW = 4096;
export const PACE_WINDOW_MS = 1000;

/**
 * How fast one request's body may come in small pieces. node:http hands each chunk of a chunked
 * body (and each short socket read) over as one 'data' event, and each costs the worker a few
 * microseconds whatever its size: a client sending 1-byte chunks for 6 s kept a worker busy for
 * 10 s, and other clients' small GETs took 0.7 s instead of 2 ms (0.6 s of CPU and 2 ms paced). docker,
 * podman, skopeo and curl send pieces of 32 KiB and more, and a slow producer's small pieces come
 * far slower than this allows: neither ever waits here.
 */
export class ChunkPacing {
  constructor(private readonly clock: Clock) {}

  /** The pace of one request's body. */
  start(): ChunkPace {
    return new ChunkPace(this.clock);
  }
}

export class ChunkPace {
  #windowStart: number;
  #small = 0;

  constructor(readonly clock: Clock) {
    this.#windowStart = clock.now();
  }

  /** One piece of `bytes` came: how long to wait before reading more, 0 to read on. */
  took(bytes: number): number {
    if (bytes >= SMALL_PIECE) return 0;
    const now = this.clock.now();
    if (now - this.#windowStart >= PACE_WINDOW_MS) {
      this.#windowStart = now;
      this.#small = 0;
    }
    if (++this.#small <= SMALL_PIECES_PER_WINDOW) return 0;
    return Math.max(1, PACE_WINDOW_MS - (now - this.#windowStart));
  }
}
