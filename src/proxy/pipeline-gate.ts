import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Pipelined requests that may wait behind the one under way on a connection; more closes it. */
export const MAX_PIPELINE_DEPTH = 16;

/**
 * One request at a time per client connection. node:http parses pipelined requests as they come
 * and hands them all over at once, each with a response queued behind the one under way; such a
 * queued response never hears its client leave, so every request behind it would take a node
 * connection, a queue place and memory that nothing gives back (one connection could hold
 * thousands). Here a pipelined request waits, unstarted and holding nothing, until the response
 * before it is done; the connection is paused meanwhile so no more are parsed, and a client
 * pipelining deeper than MAX_PIPELINE_DEPTH is cut off. docker, podman, skopeo and browsers do
 * not pipeline: they never wait here.
 */
export class PipelineGate {
  /**
   * Each connection's line: whether a request is under way on it, and the starts waiting behind
   * it. Made at a connection's first request and kept while it lives: an entry made and dropped per
   * request cost a WeakMap insertion each time.
   */
  readonly #lines = new WeakMap<Socket, Line>();

  constructor(private readonly tooDeep: (socket: Socket) => void) {}

  /** Runs `start` now, or once the requests before it on the connection are done. */
  enter(socket: Socket, res: ServerResponse, start: () => void): void {
    let line = this.#lines.get(socket);
    if (line === undefined) {
      line = { busy: false, queue: [] };
      this.#lines.set(socket, line);
    }
    if (!line.busy) {
      this.#begin(socket, res, start, line);
      return;
    }
    const { queue } = line;
    if (queue.length >= MAX_PIPELINE_DEPTH) {
      queue.length = 0;
      this.tooDeep(socket);
      return;
    }
    socket.pause();
    const waiting = line;
    queue.push(() => this.#begin(socket, res, start, waiting));
  }

  #begin(socket: Socket, res: ServerResponse, start: () => void, line: Line): void {
    line.busy = true;
    // 'close' comes once node:http has handed the connection to the next queued response, so the
    // next request starts with its own response attached to the socket (and hears the client leave).
    // A response's 'close' comes once (node:http's emitCloseNT): a plain listener, not once()'s wrapper.
    res.on('close', () => {
      const { queue } = line;
      const next = queue.shift();
      if (next === undefined) {
        line.busy = false;
        return;
      }
      if (socket.destroyed || socket.writableEnded) {
        // The client left, or the answer closed the connection (RFC 9112 9.6: nothing after it is
        // served): what waited behind never started and holds nothing.
        queue.length = 0;
        line.busy = false;
        return;
      }
      if (queue.length === 0) socket.resume();
      next();
    });
    start();
  }
}

/** A connection's requests: one under way (`busy`), and the starts of those pipelined behind it. */
interface Line {
  busy: boolean;
  queue: Array<() => void>;
}
