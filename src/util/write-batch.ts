/**
 * Writes put off to the end of the event loop's turn, then made one after another.
 *
 * A worker handles every event one poll returned before its immediates run. Made as each request
 * is handled, the writes of one turn (requests to the nodes, small answers to the clients) are
 * spaced by the work of the requests between them, and each wakes its reader alone: on a loaded
 * host a node or client woken for one request runs, sleeps and is woken again for the next, and
 * takes the worker's core from it each time. Made together at the end of the turn, they reach a
 * reader while it is still awake for the first. Measured in docs/benchmarks.md.
 */
export interface WriteBatch {
  /** Makes `write` once this turn's events are handled; at once with the rest when `max` are waiting. */
  later(write: () => void): void;
  /** Makes every write waiting now (before a worker stops). */
  flush(): void;
}

export interface WriteBatchOptions {
  /**
   * Writes waiting at most: the longest a write waits is the work of this many requests (tens of
   * microseconds each), however many events one poll returns.
   */
  max: number;
  /** A write that threw (a bug): the others are still made. */
  onError: (err: unknown) => void;
}

/** How many writes wait for the end of a turn at most. */
export const WRITE_BATCH_MAX = 64;

export function createWriteBatch(options: WriteBatchOptions): WriteBatch {
  return new TurnEndWriteBatch(options);
}

class TurnEndWriteBatch implements WriteBatch {
  #waiting: Array<() => void> = [];
  #scheduled = false;

  constructor(private readonly options: WriteBatchOptions) {}

  later(write: () => void): void {
    this.#waiting.push(write);
    if (this.#waiting.length >= this.options.max) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#turnEnded);
    }
  }

  readonly #turnEnded = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  flush(): void {
    const writes = this.#waiting;
    if (writes.length === 0) return;
    this.#waiting = [];
    for (const write of writes) {
      try {
        write();
      } catch (err) {
        this.options.onError(err);
      }
    }
  }
}
