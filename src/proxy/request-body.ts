import type { IncomingMessage } from 'node:http';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import type { Timer } from '../util/clock.js';
import type { ChunkPace } from './chunk-pace.js';
import { StallClock } from './stall-clock.js';

/**
 * The client's request body as undici reads it: pulled one chunk at a time (so the node's pace
 * sets the client's), counted, and detachable. A node may answer before it has read the whole
 * body (an early 401 or 404 to an upload); the rest must then be discarded rather than left
 * unread, or the client stalls with a full TCP window and never finishes sending.
 */
export class RequestBody {
  bytes = 0;
  /** Set once undici starts reading; an untouched body can still be sent to another node. */
  touched = false;
  /** The client failed while sending it (hung up mid-upload). */
  clientFailed = false;
  /** The whole body, read up front when it is small: it can then be sent to another node. */
  buffered: Buffer | undefined;
  #released = false;
  #pending: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | undefined;
  #ended = false;
  #error: Error | undefined;
  /** Waits for the client's next bytes while a node asked for them. */
  readonly stalls = new StallClock();
  /** Milliseconds the body was not read because it came in too many small pieces (chunk-pace.ts). */
  pacedMs = 0;
  /** Set while the body is not read for its client's small pieces (chunk-pace.ts); when it fires, reading goes on. */
  #pacing: Timer | undefined;
  #pacedFrom = 0;

  constructor(
    private readonly req: IncomingMessage,
    private readonly reclaimer: BufferReclaimer,
    /** How fast the body may come in small pieces; undefined: as fast as it comes. */
    private readonly pace?: ChunkPace,
  ) {}

  readonly #onData = (chunk: Buffer): void => {
    this.req.pause();
    const wait = this.pace?.took(chunk.length) ?? 0;
    if (wait > 0 && this.#pacing === undefined) {
      this.#pacedFrom = this.pace!.clock.now();
      this.#pacing = this.pace!.clock.setTimeout(this.#paced, wait);
    }
    this.bytes += chunk.length;
    // node:http copies each read's body bytes into a buffer of their own, dropped once sent on.
    this.reclaimer.allocated(chunk.length);
    const p = this.#pending;
    this.#pending = undefined;
    this.stalls.end();
    p?.resolve({ value: chunk, done: false });
  };

  readonly #paced = (): void => {
    this.#endHold();
    if (this.#pending === undefined) return;
    this.stalls.begin();
    this.req.resume();
  };

  #endHold(): void {
    if (this.#pacing === undefined) return;
    this.pace!.clock.clearTimeout(this.#pacing);
    this.#pacing = undefined;
    this.pacedMs += Math.max(0, this.pace!.clock.now() - this.#pacedFrom);
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
    this.#endHold();
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
    return this.buffered ?? this.iterable();
  }

  /** A fresh iterable over the client's body; undici pulls the next chunk only when the node took the last. */
  iterable(): AsyncIterable<Buffer> {
    const { req } = this;
    return {
      [Symbol.asyncIterator]: () => {
        this.touched = true;
        req.on('data', this.#onData);
        req.once('end', this.#onEnd);
        req.once('error', this.#onError);
        // 'aborted' without 'error' happens on some Node versions when the client hangs up.
        req.once('aborted', () => this.#onError(new Error('client aborted the upload')));
        return {
          next: () =>
            new Promise<IteratorResult<Buffer>>((resolve, reject) => {
              if (this.#error) return reject(this.#error);
              if (this.#ended || this.#released) return resolve({ value: undefined, done: true });
              this.#pending = { resolve, reject };
              // A hold for small pieces is harbor-lb's doing, not a stall of the client's (the
              // client sends as fast as it can): its wait begins when the hold ends.
              if (this.#pacing !== undefined) return;
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

  /** Stops feeding the node; what the client still sends is read and dropped. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.pace?.done();
    this.req.off('data', this.#onData);
    this.#endHold();
    this.#settle();
    if (!this.req.complete && !this.req.destroyed) {
      this.req.on('data', this.#onDropped);
      this.req.resume();
    }
  }
}
