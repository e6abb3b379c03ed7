import type { DestinationStream } from 'pino';
import { register } from 'on-exit-leak-free';

/**
 * Routing lines of one event-loop turn go out in one write, at the end of the turn. Under load that
 * is one write for many requests (a write per line cost about a tenth of the small-request rate, see
 * docs/benchmarks.md); at low traffic a line waits for nothing but the end of its turn. Event lines
 * (pino's writes) go out at once, after any routing lines held before them, so the order is kept
 * and a last line before exit is never held. flush() writes what is held and flushes the
 * destination (shutdown); a process that exits mid-turn (a crash) writes what is held
 * synchronously on 'exit', as pino does for its own buffer.
 */
export class TurnBatchedDestination implements DestinationStream {
  #held = '';

  constructor(
    private readonly inner: DestinationStream,
    /** Each write of held lines at most this many bytes, cut at line ends (see LogOptions.shared). */
    private readonly maxWrite = Infinity,
  ) {
    register(this, (d) => d.#writeHeldSync());
  }

  /** Holds `text` until the end of this turn. */
  writeBatched(text: string): void {
    if (this.#held === '') setImmediate(this.#writeHeld);
    this.#held += text;
  }

  write(text: string): void {
    this.#writeHeld();
    this.inner.write(text);
  }

  flush(cb: (err?: Error | null) => void = () => {}): void {
    this.#writeHeld();
    const inner = this.inner as DestinationStream & { flush?: (cb: (err?: Error | null) => void) => void };
    if (typeof inner.flush === 'function') inner.flush(cb);
    else cb();
  }

  #writeHeldSync(): void {
    if (this.#held === '') return;
    this.#writeHeld();
    const inner = this.inner as DestinationStream & { flushSync?: () => void };
    try {
      inner.flushSync?.();
    } catch {
      // Exiting: a destination that cannot flush now has nothing better to do.
    }
  }

  readonly #writeHeld = (): void => {
    if (this.#held === '') return;
    const text = this.#held;
    this.#held = '';
    if (text.length <= this.maxWrite / 4 || Buffer.byteLength(text) <= this.maxWrite) return void this.inner.write(text);
    // Whole lines per write, each write within maxWrite (a single longer line goes alone).
    let start = 0;
    while (start < text.length) {
      let end = start;
      let bytes = 0;
      while (end < text.length) {
        const nl = text.indexOf('\n', end);
        const next = nl < 0 ? text.length : nl + 1;
        const size = Buffer.byteLength(text.slice(end, next));
        if (bytes > 0 && bytes + size > this.maxWrite) break;
        bytes += size;
        end = next;
      }
      this.inner.write(text.slice(start, end));
      start = end;
    }
  };
}
