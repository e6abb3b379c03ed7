import type { Clock } from '../util/clock.js';
import { TickingSet, type Ticked } from '../util/ticking-set.js';

/** A request/response exchange as the rate watch sees it. */
export interface Transfer {
  /** Bytes read from the client so far. */
  read(): number;
  /** Bytes written to the client that its connection has taken, in whole writes. */
  written(): number;
  /**
   * Of the write under way to the client, the bytes its connection has not taken yet, when the
   * socket can tell (undefined otherwise). A write is counted in written() only once all of it is
   * taken, and a blob goes out in writes of up to 1 MiB: this shows the progress within one.
   */
  unsent(): number | undefined;
  /** Whether the proxy is waiting on the client now: for more request body, or for it to read. */
  waitingOnClient(): boolean;
  /** Called once when the client is too slow; ends the exchange. */
  cut(): void;
}

interface Watched extends Ticked {
  transfer: Transfer;
  waited: number;
  /** Bytes moved in the current window: whole writes and reads, and progress within a write. */
  moved: number;
  lastRead: number;
  lastWritten: number;
  lastUnsent: number | undefined;
  /** Progress within the write under way, already in `moved`: not counted again when it completes. */
  partial: number;
}

const TICK_MS = 1000;

/**
 * Bounds slow bodies the way haproxy and nginx do: time spent waiting on a client is added up,
 * and each `window` of it must have moved `minRate` bytes per second, or the exchange is cut.
 * Only waiting on the client counts (a node taking its time to answer does not), and the first
 * window is the grace, so a slow upload that keeps moving is never cut. Progress within a write
 * counts (a probe's reader at 1,500 B/s, above minBodyRate, was cut between two writes). One
 * timer for all.
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
    return this.#watched.add({ transfer, waited: 0, moved: 0, lastRead: transfer.read(), lastWritten: transfer.written(), lastUnsent: transfer.unsent(), partial: 0, tickIndex: -1 });
  }

  stop(): void {
    this.#watched.stop();
  }

  #tick(watched: Iterable<Watched>): void {
    const needed = (this.minRate * this.window) / 1000;
    for (const w of watched) {
      if (!w.transfer.waitingOnClient()) continue;
      measure(w);
      w.waited += TICK_MS;
      if (w.waited < this.window) continue;
      if (w.moved < needed) {
        this.#watched.delete(w);
        w.transfer.cut();
      } else {
        w.waited = 0;
        w.moved = 0;
      }
    }
  }
}

/** Adds what moved since the last look: reads, and whole writes or else the progress within the write under way. */
function measure(w: Watched): void {
  const read = w.transfer.read();
  const written = w.transfer.written();
  const unsent = w.transfer.unsent();
  w.moved += read - w.lastRead;
  if (written > w.lastWritten) {
    // The progress already counted within the writes that completed is not counted again.
    w.moved += Math.max(0, written - w.lastWritten - w.partial);
    w.partial = 0;
  } else if (unsent !== undefined && w.lastUnsent !== undefined && unsent < w.lastUnsent) {
    w.partial += w.lastUnsent - unsent;
    w.moved += w.lastUnsent - unsent;
  }
  w.lastRead = read;
  w.lastWritten = written;
  w.lastUnsent = unsent;
}

const noop = (): void => {};
