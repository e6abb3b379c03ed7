import type { IncomingMessage } from 'node:http';
import type { Clock } from '../util/clock.js';

/** Pieces a connection's chunked bodies may bring within a window, per client... */
export const PIECES_PER_WINDOW = 4096;
/**
 * ...unless they average at least this many bytes. node:http splits a chunk where a socket read
 * ends, so chunks of 1 KiB arrive as pieces averaging about 1,000 bytes.
 */
export const TINY_AVERAGE = 512;
export const PIECES_WINDOW_MS = 1000;
/** Read off the connection for a body before its framing is judged. */
export const FRAMING_JUDGED_AFTER = 16 * 1024;

/** Pieces of one body after which their average alone tells a body of chunks of a few bytes... */
export const FEW_BYTES_JUDGED_AFTER = 2048;
/** ...when they average under this many bytes: each brings at least this much framing (`1\r\n`, `\r\n`). */
export const FEW_BYTES = 5;

/** Why a body is refused when more than half of what its connection read for it is chunk framing. */
export const MOSTLY_FRAMING = `chunk framing made up more than half of its first ${FRAMING_JUDGED_AFTER / 1024} KiB or more`;
/** Why a body is refused when its pieces average a few bytes (more framing than body, whatever was read with it). */
export const FEW_BYTE_PIECES = `more than ${FEW_BYTES_JUDGED_AFTER} pieces of body averaging under ${FEW_BYTES} bytes: more chunk framing than body`;
/** Why a body is refused for the count of its pieces. */
export const TOO_MANY_PIECES = `more than ${PIECES_PER_WINDOW} pieces of body averaging under ${TINY_AVERAGE} bytes within ${PIECES_WINDOW_MS} ms on its connection`;

/**
 * Whether more than half of what a connection read for a body is chunk framing (`wire` bytes read,
 * `body` bytes of body among them): chunks of a few bytes each. Judged at once, before node:http
 * has made thousands of them into buffers: the count of pieces comes only as they are handed on.
 */
export function mostlyFraming(wire: number, body: number): boolean {
  return wire >= FRAMING_JUDGED_AFTER && wire > 2 * body;
}

/** Whether the pieces of one body so far (`pieces` of them, `bytes` in all) average a few bytes. */
export function fewBytePieces(pieces: number, bytes: number): boolean {
  return pieces > FEW_BYTES_JUDGED_AFTER && bytes < pieces * FEW_BYTES;
}

/**
 * Whether a chunked request body comes in too many tiny pieces. node:http hands each chunk over
 * as one 'data' event and a buffer of its own, and each costs the worker a few microseconds
 * whatever its size: one client sending 1-byte chunks for 6 s kept a worker busy for 10 s of CPU,
 * and other clients' small GETs took 0.7 s instead of 2 ms. Such a body is refused (`400`) and its
 * connection closed, which frees what node:http holds of it at once. Holding it instead was tried:
 * while held, node:http keeps every piece of the reads under way as a buffer of its own, tens of
 * thousands of them, about 50 MiB per connection.
 *
 * Counted per connection and client, over the chunked bodies of its requests only: one read can
 * bring thousands of chunks, while a body with Content-Length comes in a piece per read, which
 * its client pays a packet for. Per connection, not per request: requests of a few thousand tiny
 * pieces each, one after another or pipelined, would otherwise each stay under the limit and
 * together keep a worker busy (a probe: 136 such requests in 4 s on one connection, a core's
 * worth of CPU). Per client too: a trusted proxy in front (listen.trustedProxies) carries many
 * clients' requests on a few connections, and one client's pieces must not refuse another's body.
 * Other connections of the same client are not judged by it, and a connection that is cut costs
 * its client a new one. A fast upload brings a few thousand pieces a second of 16 KiB and more
 * (docker, podman, skopeo, curl), with now and then a short read between them; a slow producer's
 * small pieces come far slower than this: neither is refused by this count (pieces of under 5
 * bytes are, however slowly they come: fewBytePieces and the framing rule).
 */
export class TinyPieceLimit {
  /** Each connection's counts by client, for as long as the connection lives. */
  readonly #counts = new WeakMap<object, Map<string, TinyPieces>>();

  constructor(private readonly clock: Clock) {}

  /** The count of the bodies a client sends on a connection (`connection`: its socket). */
  of(connection: object, client: string): TinyPieces {
    let counts = this.#counts.get(connection);
    if (counts === undefined) {
      counts = new Map();
      this.#counts.set(connection, counts);
    }
    let count = counts.get(client);
    if (count === undefined) {
      // Clients come and go on a trusted proxy's connection: those whose window is over would
      // start a new one anyway, so they are forgotten before the map grows.
      if (counts.size >= CLIENTS_BEFORE_PRUNING) {
        const now = this.clock.now();
        for (const [ip, c] of counts) if (c.over(now)) counts.delete(ip);
      }
      count = new TinyPieces(this.clock);
      counts.set(client, count);
    }
    return count;
  }
}

/** Clients counted on one connection before those whose window is over are forgotten. */
const CLIENTS_BEFORE_PRUNING = 64;

export class TinyPieces {
  #windowStart: number;
  #pieces = 0;
  #bytes = 0;

  constructor(private readonly clock: Clock) {
    this.#windowStart = clock.now();
  }

  /** Whether this count's window is over at `now` (a clock stepped back ends it too): its next piece over the limit starts a new one. */
  over(now: number): boolean {
    const into = now - this.#windowStart;
    return into >= PIECES_WINDOW_MS || into < 0;
  }

  /** One piece of `bytes` came: true when the body is now over the limit. */
  took(bytes: number): boolean {
    // Counted only until the window's pieces run out; the clock is read only then.
    if (++this.#pieces <= PIECES_PER_WINDOW) {
      this.#bytes += bytes;
      return false;
    }
    const now = this.clock.now();
    if (this.over(now)) {
      this.#windowStart = now;
      this.#pieces = 1;
      this.#bytes = bytes;
      return false;
    }
    this.#bytes += bytes;
    return this.#bytes < this.#pieces * TINY_AVERAGE;
  }
}

/**
 * Whether the request's body is chunked: only chunk framing makes one read bring many pieces, while
 * a body with Content-Length comes a piece per read, which its client pays a packet for.
 */
export function chunked(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * How much of a chunked body node:http may hold unread before it stops reading the connection, in
 * bytes. Its limit counts bytes, not pieces: at Node 24's default (64 KiB) a body of 1-byte chunks
 * was 65,536 buffers, about 20 MB, before harbor-lb read the first and could judge it. 16 KiB is
 * Node 20's default; a chunked upload in large pieces is paused after each read either way.
 */
export const CHUNKED_BODY_BUFFER = 16 * 1024;

/** Lowers what node:http holds of this request's body unread to CHUNKED_BODY_BUFFER (a Readable's limit has no public setter). */
export function holdFewPieces(req: IncomingMessage): void {
  const state = (req as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (typeof state?.highWaterMark === 'number' && state.highWaterMark > CHUNKED_BODY_BUFFER) state.highWaterMark = CHUNKED_BODY_BUFFER;
}
