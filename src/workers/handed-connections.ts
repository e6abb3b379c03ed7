import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Closed connections are told to the control plane at most this late: one message, not one per connection. */
const CLOSED_BATCH_MS = 10;

/**
 * A request worker's end of connection handoff (proxy.connectionBalance least-connections): the
 * control plane accepts client connections and sends each to a worker, which serves it on its
 * client listener as if that had accepted it, and tells how many have closed since, so that the
 * control plane's counts (by which it chooses a worker) stay true.
 */
export class HandedConnections {
  #closed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: Server,
    private readonly tellClosed: (count: number) => void,
  ) {}

  take(socket: Socket): void {
    socket.once('close', this.#onClose);
    this.server.emit('connection', socket);
  }

  /** Tells the closes not yet told (before the worker ends). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed === 0) return;
    const count = this.#closed;
    this.#closed = 0;
    this.tellClosed(count);
  }

  readonly #onClose = (): void => {
    this.#closed++;
    this.#timer ??= setTimeout(() => this.flush(), CLOSED_BATCH_MS);
  };
}
