import type { IncomingMessage } from 'node:http';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import { freeOnceWritten } from '../util/free-once-written.js';
import type { LargeReads } from './client-reads.js';
import { StallClock } from './stall-clock.js';
import { FEW_BYTE_PIECES, fewBytePieces, mostlyFraming, MOSTLY_FRAMING, TINY_AVERAGE, TOO_MANY_PIECES, type TinyPieces } from './tiny-pieces.js';

/** The body's pieces, counted, and what to do when they are too many and too small (tiny-pieces.ts). */
export interface TinyPieceWatch {
  pieces: TinyPieces;
  /**
   * Called once, with why: the caller refuses the request (`refuse`). From within the piece that
   * went over, or, for the framing rule, once the read that brought it is parsed whole.
   */
  over: (why: string) => void;
}

const NONE_LEFT = (): number => 0;

/**
 * The client's request body as undici reads it: pulled one chunk at a time (so the node's pace
 * sets the client's), counted, and detachable. A node may answer before it has read the whole
 * body (an early 401 or 404 to an upload); the rest must then be discarded rather than left
 * unread, or the client stalls with a full TCP window and never finishes sending.
 */
export class RequestBody {
  bytes = 0;
  /** Times the node's side asked for more (undici pulls the next chunk once the node took the last): its progress. */
  taken = 0;
  /** Set once undici starts reading; an untouched body can still be sent to another node. */
  touched = false;
  /** The client failed while sending it (hung up mid-upload). */
  clientFailed = false;
  /** Refused (`refuse`): what the client still sends is never read. */
  refused = false;
  /** The whole body, read up front when it is small: it can then be sent to another node. */
  buffered: Buffer | undefined;
  #released = false;
  /** Pieces go to a node's socket, which frees each once written (source). */
  #streaming = false;
  #pending: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;
  #ended = false;
  #error: Error | undefined;
  /** Waits for the client's next bytes while a node asked for them. */
  readonly stalls = new StallClock();

  constructor(
    private readonly req: IncomingMessage,
    private readonly reclaimer: BufferReclaimer,
    private readonly tiny?: TinyPieceWatch,
    /**
     * Called once, before the body is first read: the client waits for a 100 Continue before it
     * sends its body (Expect: 100-continue), so it gets one only once harbor-lb wants the body.
     */
    private goAhead?: () => void,
    /** Told what is left of the body while it streams to a node (a body of known length: chunked ones are never read large). */
    private readonly largeReads?: LargeReads,
  ) {
    this.#readBefore = req.socket?.bytesRead ?? 0;
  }

  /** What the connection had read when the body began (its head, perhaps some of the body). */
  readonly #readBefore: number;

  /** Pieces of this body handed on so far (the connection's count is the TinyPieceWatch's). */
  #pieces = 0;

  /** The piece (`bytes` of it) shows the body to be in tiny pieces: why, or undefined. */
  #tinyWhy(bytes: number): string | undefined {
    this.#pieces++;
    if (this.tiny!.pieces.took(bytes)) return TOO_MANY_PIECES;
    if (bytes >= TINY_AVERAGE) return undefined;
    // From the pieces alone: a body whole in the read that brought its head, or complete before it
    // was judged (below), is never judged by what the connection read.
    if (fewBytePieces(this.#pieces, this.bytes)) return FEW_BYTE_PIECES;
    return this.#mostlyFraming() ? MOSTLY_FRAMING : undefined;
  }

  /**
   * Whether more than half of what the connection read for the body is chunk framing. Once the
   * body is complete, what the connection reads is the requests after it: not judged then.
   */
  #mostlyFraming(): boolean {
    const socket = this.req.socket;
    if (socket === undefined || socket === null || this.req.complete) return false;
    return mostlyFraming(socket.bytesRead - this.#readBefore, this.bytes + this.req.readableLength);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.req.pause();
    this.bytes += chunk.length;
    // node:http copies each read's body bytes into a buffer of their own, dropped once sent on.
    const epoch = this.reclaimer.allocated(chunk.length);
    if (this.tiny !== undefined && this.#error === undefined) {
      const why = this.#tinyWhy(chunk.length);
      if (why !== undefined && why !== MOSTLY_FRAMING) return this.tiny.over(why);
      // A flowing body gets its pieces from within node:http's parse of a read, when bytesRead
      // counts all of that read but the body only what is parsed of it so far (the tail of a 1 KiB
      // chunk split between reads, first in a 64 KiB read, looked like 400 bytes of body in 64 KiB).
      // The piece is held (the body is paused) and judged again once every read is parsed whole:
      // setImmediate runs after the poll phase's reads (ticks run between node:http's callbacks).
      if (why !== undefined) return void setImmediate(this.#judgeHeld, chunk, epoch);
    }
    this.#pass(chunk, epoch);
  };

  readonly #judgeHeld = (chunk: Buffer, epoch: number): void => {
    if (this.#error === undefined && !this.#released && this.#mostlyFraming()) return this.tiny!.over(MOSTLY_FRAMING);
    this.#pass(chunk, epoch);
  };

  #pass(chunk: Buffer, epoch: number): void {
    // A piece streamed to a node is read by nothing after its write: its memory goes then.
    if (this.#streaming) freeOnceWritten(chunk, (bytes) => this.reclaimer.released(bytes, epoch));
    const p = this.#pending;
    this.#pending = undefined;
    this.stalls.end();
    p?.resolve({ value: chunk, done: false });
  }

  /** After release: what the client still sends is dropped, its buffers counted all the same. */
  readonly #onDropped = (chunk: Buffer): void => {
    this.reclaimer.allocated(chunk.length);
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#settle();
  };

  readonly #onError = (err: Error): void => {
    this.clientFailed = true;
    this.#error = err;
    this.#settle();
  };

  #settle(): void {
    if (this.#streaming) this.largeReads?.want(this.req.socket, NONE_LEFT, this);
    const p = this.#pending;
    this.#pending = undefined;
    this.stalls.end();
    if (p === undefined) return;
    if (this.#error) p.reject(this.#error);
    else p.resolve({ value: undefined, done: true });
  }

  /**
   * Reads a small body whole (a manifest, a short chunk) so that it can be replayed where that is
   * safe: when nothing reached the node, or a registry refused the token before acting.
   */
  async preload(): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of this.iterable()) chunks.push(c);
    this.buffered = Buffer.concat(chunks, this.bytes);
  }

  /** What undici sends: the preloaded bytes (the same on every attempt), or the live stream. */
  source(): Buffer | AsyncIterable<Buffer> {
    return this.buffered ?? this.iterable(true);
  }

  /**
   * A fresh iterable over the client's body; undici pulls the next chunk only when the node took
   * the last. `streamed`: its pieces are written to a node and read by nothing after, so each is
   * freed once written; not so for preload, which keeps them.
   */
  iterable(streamed = false): AsyncIterable<Buffer> {
    const { req } = this;
    return {
      [Symbol.asyncIterator]: () => {
        this.touched = true;
        this.#streaming = streamed;
        // Not once let go: what was dropped since is counted nowhere, and nothing would say 0 after.
        if (streamed && this.largeReads !== undefined && !this.#released && !this.#ended && this.#error === undefined) {
          // What the connection has yet to read of the body: node:http parsed every read so far,
          // and what it made of them waits in the request's buffer or has gone to the node.
          const length = Number(req.headers['content-length']);
          if (Number.isSafeInteger(length)) this.largeReads.want(req.socket, () => length - this.bytes - req.readableLength, this);
        }
        const goAhead = this.goAhead;
        this.goAhead = undefined;
        goAhead?.();
        req.on('data', this.#onData);
        req.once('end', this.#onEnd);
        req.once('error', this.#onError);
        // 'aborted' without 'error' happens on some Node versions when the client hangs up.
        req.once('aborted', () => this.#onError(new Error('client aborted the upload')));
        return {
          next: () =>
            new Promise<IteratorResult<Buffer>>((resolve, reject) => {
              this.taken++;
              if (this.#error) return reject(this.#error);
              if (this.#ended || this.#released) return resolve({ value: undefined, done: true });
              this.#pending = { resolve, reject };
              this.stalls.begin();
              req.resume();
            }),
          return: () => {
            this.release();
            return Promise.resolve({ value: undefined, done: true as const });
          },
        };
      },
    };
  }

  /** Whether the node is waiting for the client's next bytes now. */
  get waiting(): boolean {
    return this.#pending !== undefined;
  }

  /** Ends the body with `err` (the client is too slow): the node's request fails, the client's problem. */
  abort(err: Error): void {
    if (this.#error !== undefined) return;
    this.clientFailed = true;
    this.#error = err;
    this.#settle();
  }

  /**
   * Ends the body with `err` and reads none of the rest: the connection is closed once the refusal
   * is out. For a body in tiny pieces, each of which node:http would make a buffer of its own.
   */
  refuse(err: Error): void {
    this.refused = true;
    this.req.pause();
    this.abort(err);
  }

  /** Stops feeding the node; what the client still sends is read and dropped, unless the body was refused. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.req.off('data', this.#onData);
    this.#settle();
    if (!this.refused && !this.req.complete && !this.req.destroyed) {
      this.req.on('data', this.#onDropped);
      this.req.resume();
    }
  }
}
