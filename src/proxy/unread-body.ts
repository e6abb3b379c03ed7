import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import type { Clock, Timer } from '../util/clock.js';
import { chunked, TOO_MANY_PIECES, type TinyPieceLimit } from './tiny-pieces.js';

/** How much of a request's body harbor-lb still reads and drops after it has answered the request. */
export const UNREAD_BODY_LIMIT = 1024 * 1024;
/** How long after the answer such a body may take to end (nginx's lingering_time). */
export const UNREAD_BODY_TIME = 30_000;
/** How often what the connection read is checked, between the body's chunks. */
const CHECK_EVERY_MS = 1_000;

export interface UnreadBodyOptions {
  /** Bytes read off the connection after the answer (framing included) before it is closed. */
  limit: number;
  /** Milliseconds after the answer within which the body must end. */
  within: number;
  clock: Clock;
  /** How many tiny pieces a body may come in (tiny-pieces.ts): past that, the connection is closed. */
  pieces: TinyPieceLimit;
  /**
   * Closes the connection, the answer written whole (ConnectionGuard.closeAfterAnswer: counted,
   * logged, and closed gently).
   */
  close: (socket: IncomingMessage['socket'], why: string, clientIp: string) => void;
}

/**
 * A request answered before its body arrived whole: refused by harbor-lb, or an upload a node
 * answered early (as a registry refuses an expired token). node:http reads whatever the client
 * still sends and drops it, so that the connection can carry the next request, however much and
 * however slowly that is: a client sending gigabytes to a refused path had harbor-lb read them all,
 * on a worker other clients share. A body that ends within `limit` bytes read off the connection
 * and `within` ms keeps its connection; otherwise nothing more is read and the connection is closed once the answer is
 * written whole, as haproxy and nginx close it. So is one whose rest takes its connection's count of
 * tiny pieces (tiny-pieces.ts, this body's pieces before the answer included) over the limit:
 * each costs the worker a 'data' event.
 */
export class UnreadBodyLimit {
  constructor(private readonly opts: UnreadBodyOptions) {}

  /**
   * Called once harbor-lb has answered the request, or passed a node's answer on. `reclaimer`
   * is told of the dropped chunks (node:http allocates each) unless someone else tells it already.
   */
  watch(req: IncomingMessage, res: ServerResponse, clientIp: string, reclaimer: BufferReclaimer | undefined): void {
    if (req.complete || req.destroyed) return;
    const { limit, within, clock } = this.opts;
    const { socket } = req;
    const close = (why: string): void => this.opts.close(socket, why, clientIp);
    // What the connection reads, not the body's bytes: chunk framing that carries one byte of body
    // per 60 KB (a size padded with zeros, a long extension) must count all the same.
    const readBefore = socket.bytesRead;
    const over = (): boolean => socket.bytesRead - readBefore > limit;
    const overWhy = `more than ${limit} bytes came after its answer`;
    const pieces = chunked(req) ? this.opts.pieces.of(socket, clientIp) : undefined;
    let timer: Timer | undefined;
    let check: Timer | undefined;
    // node:http no longer tells a finished request that its connection closed: the socket does.
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', stop);
      req.off('close', stop);
      socket.off('close', stop);
      if (timer !== undefined) clock.clearTimeout(timer);
      if (check !== undefined) clock.clearTimeout(check);
      timer = check = undefined;
    };
    const cut = (why: string): void => {
      stop();
      // Nothing more is read (past the read under way): the client's window fills and it waits for the close.
      req.pause();
      if (res.writableFinished) return close(why);
      // The answer is still being written, to a client that sends without reading it: it has
      // `within` more to take it, then the connection is closed all the same.
      const late = clock.setTimeout(() => close(`${why}, and its answer was not read within ${within} ms`), within);
      late.unref?.();
      const settle = (): void => {
        clock.clearTimeout(late);
        res.off('finish', onFinish);
        socket.off('close', settle);
      };
      const onFinish = (): void => {
        settle();
        close(why);
      };
      res.once('finish', onFinish);
      socket.once('close', settle);
    };
    const onData = (chunk: Buffer): void => {
      reclaimer?.allocated(chunk.length);
      if (over()) cut(overWhy);
      else if (pieces?.took(chunk.length) === true) cut(`${TOO_MANY_PIECES}, the last after its answer`);
    };
    // Between chunks too: a chunk size of endless zeros is read without a chunk ever arriving.
    const recheck = (): void => {
      if (over()) return cut(overWhy);
      check = clock.setTimeout(recheck, CHECK_EVERY_MS);
      check.unref?.();
    };
    // Read from here on by this listener. node:http, left to drop an unread body itself once the
    // answer is finished, hands its chunks to no one, and so could not be told to stop.
    req.on('data', onData);
    req.once('end', stop);
    req.once('close', stop);
    socket.once('close', stop);
    timer = clock.setTimeout(() => cut(`the request body did not end within ${within} ms of its answer`), within);
    timer.unref?.();
    check = clock.setTimeout(recheck, CHECK_EVERY_MS);
    check.unref?.();
    req.resume();
  }
}
