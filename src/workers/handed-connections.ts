import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Taken and closed connections are told to the control plane at most this late: one message, not one per connection. */
const REPORT_BATCH_MS = 10;

/** What the worker tells the control plane of the connections it is handed. */
export interface HandoffReports {
  /**
   * Every socket sent with a number up to `through` is told of: those in `declined` were not
   * taken, the others were; `closed` more connections closed.
   */
  told(through: number, declined: number[], closed: number): void;
}

/**
 * A request worker's end of connection handoff (proxy.connectionBalance least-connections): the
 * control plane accepts client connections and sends each, numbered, to a worker, which serves
 * it on its client listener as if that had accepted it. The worker tells which numbers it took
 * (the control plane then closes its own copies) and which it declined (it drains, or a number
 * never arrived: the descriptor did not fit, and Node drops such a message), and how many
 * connections closed, so that the control plane's counts, by which it chooses a worker, stay true.
 */
export class HandedConnections {
  /** The highest number seen (or declared missing). */
  #through = 0;
  #told = 0;
  #declined: number[] = [];
  #closed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: Server,
    private readonly reports: HandoffReports,
  ) {}

  take(seq: number, socket: Socket): void {
    // Already told of as never come (Node keeps messages in order, so this cannot happen): the
    // control plane handed its copy on, and two workers must not serve one connection.
    if (seq <= this.#through) return void socket.destroy();
    this.#reach(seq - 1);
    this.#through = seq;
    this.#schedule();
    socket.once('close', this.#onClose);
    this.server.emit('connection', socket);
  }

  /**
   * Not served here (the worker drains, or the socket did not come with the message): its copy
   * is closed unread (the socket reads only once this turn of the event loop is over), and the
   * control plane's goes to another worker at once.
   */
  decline(seq: number, socket: Socket | undefined): void {
    socket?.destroy();
    this.#reach(seq);
    this.flush();
  }

  /**
   * Everything up to `seq` was sent before this point of the channel (a later message, or the
   * control plane's check): a number not seen never arrived, and is declined.
   */
  reach(seq: number): void {
    if (seq <= this.#through) return;
    this.#reach(seq);
    this.flush();
  }

  /** Tells what is not yet told (at once after a decline, and before the worker ends). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#through === this.#told && this.#closed === 0) return;
    const declined = this.#declined;
    const closed = this.#closed;
    this.#told = this.#through;
    this.#declined = [];
    this.#closed = 0;
    this.reports.told(this.#through, declined, closed);
  }

  /** Every number after the highest seen, up to `seq`, is declined. */
  #reach(seq: number): void {
    for (let n = this.#through + 1; n <= seq; n++) this.#declined.push(n);
    if (seq > this.#through) this.#through = seq;
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => this.flush(), REPORT_BATCH_MS);
  }

  readonly #onClose = (): void => {
    this.#closed++;
    this.#schedule();
  };
}
