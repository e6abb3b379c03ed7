import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Taken and closed connections are told to the control plane at most this late: one message, not one per connection. */
const REPORT_BATCH_MS = 10;

/** What the worker tells the control plane of the connections it is handed. */
export interface HandoffReports {
  /** `taken` more sockets were taken (in the order sent), `closed` more connections closed. */
  counts(taken: number, closed: number): void;
  /** The oldest socket not yet told of was not taken: the control plane hands its copy on. */
  declined(): void;
}

/**
 * A request worker's end of connection handoff (proxy.connectionBalance least-connections): the
 * control plane accepts client connections and sends each to a worker, which serves it on its
 * client listener as if that had accepted it. The worker tells, in order, which it took (the
 * control plane then closes its own copies) and which it declined (it is draining: the control
 * plane hands those to another worker, unread), and how many closed, so that the control plane's
 * counts, by which it chooses a worker, stay true.
 */
export class HandedConnections {
  #taken = 0;
  #closed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: Server,
    private readonly reports: HandoffReports,
  ) {}

  take(socket: Socket): void {
    this.#taken++;
    this.#schedule();
    socket.once('close', this.#onClose);
    this.server.emit('connection', socket);
  }

  /**
   * Not served here (the worker drains, or the socket did not come with the message): its copy
   * is closed unread (the socket reads only once this turn of the event loop is over), and the
   * control plane's goes to another worker.
   */
  decline(socket: Socket | undefined): void {
    socket?.destroy();
    this.flush();
    this.reports.declined();
  }

  /** Tells what is not yet told (before a decline, and before the worker ends). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#taken === 0 && this.#closed === 0) return;
    const taken = this.#taken;
    const closed = this.#closed;
    this.#taken = 0;
    this.#closed = 0;
    this.reports.counts(taken, closed);
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => this.flush(), REPORT_BATCH_MS);
  }

  readonly #onClose = (): void => {
    this.#closed++;
    this.#schedule();
  };
}
