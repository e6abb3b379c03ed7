import type { DestinationStream } from 'pino';
import { register } from 'on-exit-leak-free';

/** Held lines go out at once past this many characters, whatever the time. */
const MAX_HELD = 256 * 1024;

/**
 * Routing lines go out together: a line waits at most log.batchWindow (20 ms; or until 256 KiB
 * are held) for the lines after it, and then they all go out in one write. Under load that is one
 * write for hundreds of requests: a write per event-loop turn, as before, cost about 13 µs of CPU
 * per request on small GETs (the destination's write to the thread pool and back), a sixth of the
 * whole request path; see docs/benchmarks.md. Event lines (pino's writes) go out at once, after any routing lines
 * held before them, so the order is kept and a last line before exit is never held. flush() writes
 * what is held and flushes the destination (shutdown); a process that exits with lines held (a
 * crash) writes them synchronously on 'exit', as pino does for its own buffer.
 */
export class BatchedDestination implements DestinationStream {
  #held = '';

  constructor(
    private readonly inner: DestinationStream,
    /** Each write of held lines at most this many bytes, cut at line ends (see LogOptions.shared). */
    private readonly maxWrite = Infinity,
    /** Calls `flush` once the batch's time is up (log.batchWindow). */
    private readonly schedule: (flush: () => void) => void,
  ) {
    register(this, (d) => d.#writeHeldSync());
  }

  /** Holds `text` for the lines that follow it, until the batch's time is up. */
  writeBatched(text: string): void {
    if (this.#held === '') this.schedule(this.#writeHeld);
    this.#held += text;
    if (this.#held.length >= MAX_HELD) this.#writeHeld();
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
