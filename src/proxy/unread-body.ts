import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';

/** How much of a request's body harbor-lb still reads and drops after it has answered the request. */
export const UNREAD_BODY_LIMIT = 1024 * 1024;

export interface UnreadBodyOptions {
  /** Bytes read and dropped after the answer before the connection is closed. */
  limit: number;
  /** Told of the dropped chunks (node:http allocates each), unless someone else already tells it. */
  reclaimer: BufferReclaimer | undefined;
  /** The connection is being closed for a body that went on past `limit`. */
  onCut: () => void;
}

/**
 * Called once harbor-lb has answered a request, or begun passing a node's answer on.
 *
 * A request answered before its body arrived whole (refused by harbor-lb, or a node's early answer
 * to an upload): node:http reads whatever the client still sends and drops it, so the connection
 * can carry the next request, however much that is. A client sending gigabytes to a refused path
 * had harbor-lb read them all, on a worker other clients share. A body that ends within `limit`
 * bytes keeps its connection; past that the connection is closed, as haproxy closes it, once the
 * answer is written whole.
 */
export function limitUnreadBody(req: IncomingMessage, res: ServerResponse, opts: UnreadBodyOptions): void {
  if (req.complete || req.destroyed) return;
  let dropped = 0;
  const stop = (): void => {
    req.off('data', onData);
    req.off('end', stop);
    req.off('close', stop);
  };
  const close = (): void => void req.socket.destroy();
  const onData = (chunk: Buffer): void => {
    opts.reclaimer?.allocated(chunk.length);
    dropped += chunk.length;
    if (dropped <= opts.limit) return;
    stop();
    opts.onCut();
    if (res.writableFinished) return close();
    // Not a byte more is read meanwhile: the client waits on a full window.
    req.pause();
    res.once('finish', close);
  };
  // Read from here on by this listener. node:http, left to drop an unread body itself once the
  // answer is finished, hands its chunks to no one, and so could not be told to stop.
  req.on('data', onData);
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
}
