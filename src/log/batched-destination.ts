import { writeSync } from 'node:fs';
import type { DestinationStream } from 'pino';
import { register } from 'on-exit-leak-free';

/** Held lines go out at once past this many characters (bytes, for `bytes`), whatever the time. */
const MAX_HELD = 256 * 1024;
/** The buffer held lines are encoded into as they come (`bytes`): a full batch, with room for the line that fills it. */
const STAGE_BYTES = 2 * MAX_HELD;
/** The longest a flush waits for a write in flight (see flush). */
const FLUSH_WAIT_MS = 2000;
/** pino's level number for fatal: pino calls flushSync right after such a line. */
const FATAL = 60;

/** What sonic-boom (pino's destination) shows of a write in flight: the flag is its own, not an API. */
interface InFlight {
  _writing?: boolean;
  /** Bytes given to it and not yet written. */
  _len?: number;
  /** The file descriptor it writes to. */
  fd?: number;
  once?: (event: string, fn: () => void) => unknown;
  off?: (event: string, fn: () => void) => unknown;
}

/**
 * Routing lines go out together: a line waits at most log.batchWindow (20 ms; or until 256 KiB
 * are held) for the lines after it, and then they all go out in one write. Under load that is one
 * write for hundreds of requests: a write per event-loop turn, as before, cost about 13 µs of CPU
 * per request on small GETs (the destination's write to the thread pool and back), a sixth of the
 * whole request path; see docs/benchmarks.md. Event lines (pino's writes) go out at once, after any routing lines
 * held before them, so the order is kept and a last line before exit is never held. flush() writes
 * what is held and flushes the destination (shutdown); a process that exits with lines held (a
 * crash) writes them synchronously on 'exit', as pino does for its own buffer. Written as Buffers
 * (`bytes`), each line is encoded into one reused buffer as it comes, while its text is fresh, and
 * a batch's bytes are copied out for the destination: the held text encoded at the batch's end
 * cost a small GET about 1 µs more (docs/benchmarks.md).
 */
export class BatchedDestination implements DestinationStream {
  /** The held lines, as text (not `bytes`). */
  #held = '';
  /** The held lines, encoded (`bytes`): these, then the first #staged bytes of #stage. */
  #heldPieces: Buffer[] = [];
  #heldPieceBytes = 0;
  #stage: Buffer | undefined;
  #staged = 0;
  /** The level of the line pino writes next: pino sets it on a destination that asks (pino.metadata). */
  lastLevel = 0;

  constructor(
    private readonly inner: DestinationStream,
    /** Each write of held lines at most this many bytes, cut at line ends (see LogOptions.shared). */
    private readonly maxWrite = Infinity,
    /** Calls `flush` once the batch's time is up (log.batchWindow). */
    private readonly schedule: (flush: () => void) => void,
    /**
     * `inner` is written Buffers, not strings (sonic-boom's `contentMode: 'buffer'`). The held
     * lines are encoded once, and the pieces waiting for the thread pool are off the JS heap:
     * queued as strings, 4 KiB pieces outlived young collections and filled the old generation.
     */
    private readonly bytes = false,
  ) {
    register(this, (d) => d.#writeHeldSync());
    // Asks pino for each line's level (lastLevel) before it writes the line.
    (this as unknown as Record<symbol, boolean>)[Symbol.for('pino.metadata')] = true;
  }

  /** Holds `text` for the lines that follow it, until the batch's time is up. */
  writeBatched(text: string): void {
    this.#hold(text);
    if (this.#held.length >= MAX_HELD || this.#heldPieceBytes + this.#staged >= MAX_HELD) this.#writeHeld();
  }

  /** Nothing is held. */
  #empty(): boolean {
    return this.#held === '' && this.#staged === 0 && this.#heldPieces.length === 0;
  }

  /** Adds `text` to the held lines, the batch's time starting with the first of them. */
  #hold(text: string): void {
    if (this.#empty()) this.schedule(this.#writeHeld);
    if (!this.bytes) {
      this.#held += text;
      return;
    }
    const stage = (this.#stage ??= Buffer.allocUnsafeSlow(STAGE_BYTES));
    // At most 3 bytes per UTF-16 unit. Past the room left, what is staged is set aside (copied), and
    // a text longer than the whole stage is a piece of its own: the order is kept either way.
    if (this.#staged + text.length * 3 > stage.length) {
      this.#setStagedAside();
      if (text.length * 3 > stage.length) {
        const piece = Buffer.from(text);
        this.#heldPieces.push(piece);
        this.#heldPieceBytes += piece.length;
        return;
      }
    }
    this.#staged += stage.write(text, this.#staged);
  }

  #setStagedAside(): void {
    if (this.#staged === 0) return;
    this.#heldPieces.push(Buffer.from(this.#stage!.subarray(0, this.#staged)));
    this.#heldPieceBytes += this.#staged;
    this.#staged = 0;
  }

  /** The held lines' bytes (`bytes`), now the caller's: the stage is free for the next lines. */
  #takeHeldBytes(): Buffer {
    this.#setStagedAside();
    const pieces = this.#heldPieces;
    this.#heldPieces = [];
    this.#heldPieceBytes = 0;
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }

  write(text: string): void {
    // A fatal line waits for the flushSync pino calls right after it, which writes it with the
    // lines held before it, in order (see flushSync).
    // Held however much is held: a write started here would still be in flight at flushSync.
    if (this.lastLevel >= FATAL) return this.#hold(text);
    this.#writeHeld();
    this.inner.write((this.bytes ? Buffer.from(text) : text) as string);
  }

  flush(cb: (err?: Error | null) => void = () => {}): void {
    this.#writeHeld();
    const inner = this.inner as DestinationStream & InFlight & { flush?: (cb: (err?: Error | null) => void) => void };
    const flushed = () => (typeof inner.flush === 'function' ? inner.flush(cb) : cb());
    // sonic-boom calls a flush back at once while a write is still in flight, or waiting to be
    // tried again after EAGAIN (a full pipe); a process that exits then loses that write, which
    // its exit-time flush skips. So the flush waits for it (its 'drain', when all is written), for
    // at most FLUSH_WAIT_MS: an output nobody reads must not hold a shutdown forever.
    if (inner._writing !== true || typeof inner.once !== 'function') return flushed();
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      inner.off?.('drain', done);
      inner.off?.('error', done);
      flushed();
    };
    inner.once('drain', done);
    inner.once('error', done);
    timer = setTimeout(done, FLUSH_WAIT_MS);
    timer.unref();
  }

  /** What pino calls after a fatal line: everything held is written, and the destination flushed, before it returns. */
  flushSync(): void {
    const inner = this.inner as DestinationStream & InFlight & { flushSync?: () => void; destroyed?: boolean };
    // sonic-boom starts an asynchronous write (the thread pool) of what it is given while idle, and
    // its flushSync writes what is queued before a write in flight: the first of the held lines
    // landed after the fatal line. Its flushSync also tries again forever whatever the error
    // (EPIPE: nobody reads stdout any more), which would hang a crashing process. So while it is
    // idle with nothing queued, the held lines are written here, in order and each piece whole.
    // With a write of its own in flight or waiting to be tried again, it keeps the order, and its
    // flushSync is what there is (it can then wait on a stuck output as before). Only harbor-lb's own
    // stdout (`bytes`: written Buffers, fd 1, non-blocking) is written so; a destination a caller
    // gives is flushed as it always was.
    if (this.bytes && inner._writing === false && inner._len === 0 && inner.destroyed !== true && inner.fd === 1) return this.#writeHeldNow(inner.fd);
    this.#writeHeld();
    try {
      inner.flushSync?.();
    } catch {
      // A destination that cannot flush now (exiting, not open yet) has nothing better to do.
    }
  }

  /**
   * Writes the held lines to stdout (`fd`) synchronously, in order. An output that takes nothing
   * (a full pipe) is waited for up to FLUSH_WAIT_MS; what it has not taken by then goes to the
   * destination as usual, written if the process lives on (another synchronous flush before then,
   * sonic-boom's own at exit included, writes what came after ahead of it). Any other error (EPIPE:
   * the reader left) drops them.
   */
  #writeHeldNow(fd: number): void {
    if (this.#empty()) return;
    // Node opens stdout, when it is a pipe or a socket, in non-blocking mode (libuv): a full pipe
    // then gives EAGAIN, waited for below, not a write that never returns. (A file does not block.)
    try {
      void process.stdout;
    } catch {
      // No stdout stream to be had: write to the descriptor as it is.
    }
    const pieces = wholeLines(this.#takeHeldBytes(), this.maxWrite);
    const deadline = performance.now() + FLUSH_WAIT_MS;
    let pause: Int32Array | undefined;
    for (let i = 0; i < pieces.length; i++) {
      let rest = pieces[i]!;
      while (rest.length > 0) {
        let written = 0;
        try {
          written = writeSync(fd, rest);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' && code !== 'EBUSY') return;
        }
        rest = rest.subarray(written);
        if (rest.length === 0) break;
        if (performance.now() >= deadline) {
          // The rest, from where the output stopped, to the destination: written if the process lives on.
          for (const piece of [rest, ...pieces.slice(i + 1)]) this.inner.write(piece as unknown as string);
          return;
        }
        if (written === 0) {
          // A full pipe (non-blocking): wait a moment for the reader, without spinning.
          pause ??= new Int32Array(new SharedArrayBuffer(4));
          Atomics.wait(pause, 0, 0, 10);
        }
      }
    }
  }

  #writeHeldSync(): void {
    if (!this.#empty()) this.flushSync();
  }

  readonly #writeHeld = (): void => {
    if (this.#empty()) return;
    if (this.bytes) {
      for (const piece of wholeLines(this.#takeHeldBytes(), this.maxWrite)) this.inner.write(piece as unknown as string);
      return;
    }
    const text = this.#held;
    this.#held = '';
    // At most 3 bytes per UTF-16 unit: short enough whatever it holds.
    if (text.length <= this.maxWrite / 3) return void this.inner.write(text);
    for (const piece of wholeLines(Buffer.from(text), this.maxWrite)) this.inner.write(piece.toString());
  };
}

/** `bytes` cut at line ends into pieces of at most `max` bytes (a single longer line is a piece of its own). */
function wholeLines(bytes: Buffer, max: number): Buffer[] {
  if (bytes.length <= max) return [bytes];
  const pieces: Buffer[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.length;
    if (end - start > max) {
      const lastEnd = bytes.lastIndexOf(NEWLINE, start + max - 1);
      end = lastEnd >= start ? lastEnd + 1 : nextLineEnd(bytes, start + max);
    }
    pieces.push(bytes.subarray(start, end));
    start = end;
  }
  return pieces;
}

const NEWLINE = 0x0a;

function nextLineEnd(bytes: Buffer, from: number): number {
  const nl = bytes.indexOf(NEWLINE, from);
  return nl < 0 ? bytes.length : nl + 1;
}
