import { Socket } from 'node:net';
import { LARGE_READ_SIZE, READ_SIZE } from '../util/read-sizes.js';

/** What the request path tells of a connection whose request body streams to a node. */
export interface LargeReads {
  /**
   * The connection's request has a body of known length streaming to a node, `left()` bytes of
   * which node:http has yet to parse: the connection may read them in large pieces. 0 once that
   * body ended. Asked while node:http parses one of the connection's reads (a request handler
   * runs within it), `left()` is asked once that read is parsed whole: the bytes after the head
   * in the same read are not yet counted before. `body` says which body tells: a body's 0 that
   * comes after the next body's say (a pipelined request) is not heard. Of a connection not made
   * by ClientReads (a listener that accepts its own, TLS), nothing is done.
   */
  want(socket: Socket, left: () => number, body: object): void;
}

/**
 * Connections per worker reading in large pieces at once. node:http copies each read's body into
 * a piece of its own, which waits for a node that takes it slowly: a connection paused so holds
 * its last piece and the one being written, so at most twice this many MiB wait for slow nodes.
 */
export const LARGE_READERS = 8;

const STATE = Symbol('harbor-lb.clientReads');

/** One connection's say in large reads. */
export interface ReadState {
  /** Bytes the connection read so far. */
  read: number;
  /** Where the body it may read large ends, in bytes read (LargeReads.want); 0: none. */
  end: number;
  /** Holds one of the places: its next read is large. */
  large: boolean;
  /** The body that set `end` last. */
  body?: object;
  /** node:http is parsing one of its reads now. */
  parsing?: boolean;
  /** What the request path said meanwhile, heard once the read is parsed. */
  pending?: Array<[left: () => number, body: object]>;
}

/** Bytes of the wanted body still to come after what the connection read. */
const bodyLeft = (state: ReadState): number => state.end - state.read;

/**
 * The places for large reads a worker has (LARGE_READERS): a connection takes one when a 64 KiB
 * read came full while at least 64 KiB of a body it may read large is still to come, and gives it
 * back once less than that is to come (the body ended, or was let go), at a short read (its client
 * sends slower than the worker reads: the place is better used elsewhere), and when it closes. A
 * connection paused for a slow node keeps its place, and so its piece counts.
 */
export class LargeReadPlaces {
  #taken = 0;

  constructor(private readonly max = LARGE_READERS) {}

  /** Connections reading in large pieces now. */
  get taken(): number {
    return this.#taken;
  }

  /** After a read of `n` bytes into a buffer of `size` (counted in state.read): whether the connection's next read is large. */
  afterRead(state: ReadState, n: number, size: number): boolean {
    const left = bodyLeft(state);
    if (state.large) {
      if (left < READ_SIZE || n < READ_SIZE) this.leave(state);
    } else if (left >= READ_SIZE && n === size && this.#taken < this.max) {
      state.large = true;
      this.#taken++;
    }
    return state.large;
  }

  /** LargeReads.want, for the connection whose state this is, with what is left now. */
  want(state: ReadState, left: number, body: object): void {
    if (left <= 0 && state.body !== body) return;
    state.body = left > 0 ? body : undefined;
    state.end = left > 0 ? state.read + left : 0;
    // The next read was sized to what was left of the body: it cannot reach past it.
    if (left < READ_SIZE) this.leave(state);
  }

  leave(state: ReadState): void {
    if (!state.large) return;
    state.large = false;
    this.#taken--;
  }
}

type OwnSocket = Socket & { [STATE]?: ReadState };

/**
 * The client connections a request worker is handed (proxy.connectionBalance least-connections),
 * made into sockets that read into two buffers the worker shares among all of them, and parsed
 * by node:http from the stream rather than from the socket's handle.
 *
 * Why: node:http's own parser reads each socket 64 KiB at a time and copies each read's body into
 * a piece of its own, so an upload cost a read, a piece and a write to the node per 64 KiB: about
 * what a bare Node relay costs, and pushes stayed below haproxy's rate (docs/benchmarks.md). Here a
 * connection whose body of known length streams to a node (LargeReads.want) reads up to 1 MiB at
 * a time, never past the body's end, once a 64 KiB read came full, and node:http makes 1 MiB
 * pieces of it.
 *
 * The buffers can be shared because a read is handed on whole, at once, and kept by nothing:
 * node:http copies what it keeps of it (header strings, body pieces) before the next read, which
 * only a later turn of the event loop brings. A chunked body is read 64 KiB at a time: one large
 * read of one-byte chunks would make a piece, and a callback, of each.
 */
export class ClientReads implements LargeReads {
  #small: Buffer | undefined;
  #large: Buffer | undefined;
  readonly places = new LargeReadPlaces();

  /**
   * `shared`: connections read into the shared buffers (a plain HTTP listener); otherwise each
   * socket is one like any other (a TLS listener: TLS reads the handle itself).
   */
  constructor(private readonly shared = true) {}

  /** A socket for a connection's handle, as received from the control plane. */
  socketFor(handle: object): Socket {
    const opts = { handle, readable: true, writable: true };
    if (!this.shared) return new Socket(opts as ConstructorParameters<typeof Socket>[0]);
    const small = (this.#small ??= Buffer.allocUnsafe(READ_SIZE));
    const state: ReadState = { read: 0, end: 0, large: false };
    const socket: OwnSocket = new Socket({
      ...opts,
      onread: {
        // Asked at the start and after each read: the buffer the next read goes to. A large read
        // stops where the body does: what a client sends after it (a burst of pipelined
        // requests) is read 64 KiB at a time, as node:http would, not parsed 1 MiB at once.
        buffer: () => {
          if (!state.large) return small;
          const large = (this.#large ??= Buffer.allocUnsafe(LARGE_READ_SIZE));
          const left = bodyLeft(state);
          return left >= LARGE_READ_SIZE ? large : large.subarray(0, left);
        },
        callback: (n: number, buf: Uint8Array): boolean => {
          state.read += n;
          state.parsing = true;
          try {
            socket.emit('data', n === buf.length ? buf : (buf as Buffer).subarray(0, n));
          } finally {
            state.parsing = false;
          }
          const pending = state.pending;
          state.pending = undefined;
          if (pending !== undefined) for (const [left, body] of pending) this.places.want(state, left(), body);
          this.places.afterRead(state, n, buf.length);
          // Reading goes on: node:http pauses the socket itself when it must.
          return true;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
    socket[STATE] = state;
    socket.once('close', () => this.places.leave(state));
    // node:http parses from the stream (its 'data' events), as it does for any socket whose handle
    // another reader has taken: it would otherwise read the handle itself, 64 KiB at a time.
    (handle as { _consumed?: boolean })._consumed = true;
    return socket;
  }

  want(socket: Socket, left: () => number, body: object): void {
    const state = (socket as OwnSocket | null)?.[STATE];
    if (state === undefined) return;
    if (state.parsing) (state.pending ??= []).push([left, body]);
    else this.places.want(state, left(), body);
  }
}
