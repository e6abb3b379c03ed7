import type { Clock } from '../util/clock.js';
import { TickingSet, type Ticked } from '../util/ticking-set.js';

/** A request/response exchange as the rate watch sees it. */
export interface Transfer {
  /** Bytes moved so far in either direction. */
  bytes(): number;
  /** Whether the proxy is waiting on the client now: for more request body, or for it to read. */
  waitingOnClient(): boolean;
  /** Called once when the client is too slow; ends the exchange. */
  cut(): void;
}

interface Watched extends Ticked {
  transfer: Transfer;
  waited: number;
  bytesAtStart: number;
}

const TICK_MS = 1000;

/**
 * Bounds slow bodies the way haproxy and nginx do: time spent waiting on a client is added up,
 * and each `window` of it must have moved `minRate` bytes per second, or the exchange is cut.
 * Only waiting on the client counts (a node taking its time to answer does not), and the first
 * window is the grace, so a slow upload that keeps moving is never cut. One timer for all.
 */
export class BodyRateWatch {
  readonly #watched: TickingSet<Watched>;

  constructor(
    private readonly minRate: number,
    private readonly window: number,
    clock: Clock,
  ) {
    this.#watched = new TickingSet(clock, TICK_MS, (watched) => this.#tick(watched));
  }

  get enabled(): boolean {
    return this.minRate > 0;
  }

  /** Starts watching; the returned function stops it (call it when the exchange ends). */
  watch(transfer: Transfer): () => void {
    if (!this.enabled) return noop;
    return this.#watched.add({ transfer, waited: 0, bytesAtStart: transfer.bytes(), tickIndex: -1 });
  }

  stop(): void {
    this.#watched.stop();
  }

  #tick(watched: Iterable<Watched>): void {
    const needed = (this.minRate * this.window) / 1000;
    for (const w of watched) {
      if (!w.transfer.waitingOnClient()) continue;
      w.waited += TICK_MS;
      if (w.waited < this.window) continue;
      const bytes = w.transfer.bytes();
      if (bytes - w.bytesAtStart < needed) {
        this.#watched.delete(w);
        w.transfer.cut();
      } else {
        w.waited = 0;
        w.bytesAtStart = bytes;
      }
    }
  }
}

const noop = (): void => {};
