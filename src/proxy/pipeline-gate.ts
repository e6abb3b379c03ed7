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
  /** Connections with a request under way, and the starts waiting behind it. */
  readonly #waiting = new WeakMap<Socket, Array<() => void>>();

  constructor(private readonly tooDeep: (socket: Socket) => void) {}

  /** Runs `start` now, or once the requests before it on the connection are done. */
  enter(socket: Socket, res: ServerResponse, start: () => void): void {
    const queue = this.#waiting.get(socket);
    if (queue === undefined) {
      this.#begin(socket, res, start, []);
      return;
    }
    if (queue.length >= MAX_PIPELINE_DEPTH) {
      queue.length = 0;
      this.tooDeep(socket);
      return;
    }
    socket.pause();
    queue.push(() => this.#begin(socket, res, start, queue));
  }

  #begin(socket: Socket, res: ServerResponse, start: () => void, queue: Array<() => void>): void {
    this.#waiting.set(socket, queue);
    // 'close' comes once node:http has handed the connection to the next queued response, so the
    // next request starts with its own response attached to the socket (and hears the client leave).
    res.once('close', () => {
      const next = queue.shift();
      if (next === undefined) {
        this.#waiting.delete(socket);
        return;
      }
      if (socket.destroyed || socket.writableEnded) {
        // The client left, or the answer closed the connection (RFC 9112 9.6: nothing after it is
        // served): what waited behind never started and holds nothing.
        queue.length = 0;
        this.#waiting.delete(socket);
        return;
      }
      if (queue.length === 0) socket.resume();
      next();
    });
    start();
  }
}
