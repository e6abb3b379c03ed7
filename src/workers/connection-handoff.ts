import { createServer, type Server, type Socket } from 'node:net';
import { listen } from '../proxy/listener.js';

/** Connections accepted while no worker can take one (start-up, every worker being replaced) wait, up to this many. */
const MAX_WAITING = 1024;
/** A socket declined this many times (every worker out of file descriptors, say) is closed rather than passed round again. */
const MAX_DECLINES = 3;

/** A request worker as the handoff sees it. */
export interface HandoffTarget {
  /** Client connections handed to it and not yet closed (it tells of closes in batches). */
  connections: number;
  /**
   * Sockets sent to it that it has not yet told of, by the number each was sent with (in
   * order). The control plane keeps its own copy of each until then: a worker that ends before
   * it reads one from the channel would otherwise leave the client with an open connection
   * nobody serves.
   */
  inTransit: Map<number, Socket>;
  /** The number the last socket sent to it went with. */
  lastSent: number;
}

export interface HandoffOptions<T extends HandoffTarget> {
  /** Every worker slot, in a fixed order (ties go round robin in it). */
  targets: readonly T[];
  /** Whether the worker takes connections now. */
  ready(target: T): boolean;
  /** Sends the worker the connection with its number, keeping this process's copy open; calls back with an error when it could not. */
  send(target: T, socket: Socket, seq: number, sent: (err: Error | null) => void): void;
  /** An accept failed (out of file descriptors, say): told, the listener goes on. */
  acceptFailed(err: Error): void;
}

/**
 * proxy.connectionBalance least-connections: the control plane holds the client port, accepts
 * each connection without reading from it, and passes its socket to the request worker holding
 * the fewest client connections; the worker serves it as if it had accepted it. The control plane
 * is in the accept path only: the bytes go between client and worker. Spreading by the kernel's
 * hash (kernel) splits 4 streams over 2 workers unevenly 5 times in 8 (all four on one worker's
 * core once in 8); counting connections splits them 2:2.
 */
export class ConnectionHandoff<T extends HandoffTarget> {
  readonly #server: Server;
  readonly #waiting: Socket[] = [];
  /** Where the next search starts: equal counts go round robin. */
  #next = 0;
  /** Numbers the sockets are sent with, increasing. */
  #seq = 0;
  #closed = false;
  /** How many times each socket was declined. */
  readonly #declines = new WeakMap<Socket, number>();

  constructor(private readonly opts: HandoffOptions<T>) {
    // Sockets stay unread here (pauseOnConnect): the worker's parser reads the first byte.
    // noDelay is a property of the socket itself, so it holds in the worker.
    this.#server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#hand(socket));
  }

  /** Binds the client port; resolves with the port bound (the one picked, for port 0). */
  async listen(port: number, address: string): Promise<number> {
    const bound = await listen(this.#server, port, address, 'client traffic (listen)');
    // From now on an error is an accept's (a bind's rejected the start).
    this.#server.on('error', (err) => this.opts.acceptFailed(err));
    return bound;
  }

  /**
   * The worker told of every socket sent to it up to number `through`: those in `declined` it
   * did not take (it drains, or the descriptor never reached it), and they go to another worker,
   * unread; the others it took, and this process's copies are closed (the connections live on in
   * the worker).
   */
  told(target: T, through: number, declined: readonly number[]): void {
    for (const [seq, socket] of target.inTransit) {
      if (seq > through) break;
      target.inTransit.delete(seq);
      if (!declined.includes(seq)) {
        socket.destroy();
        continue;
      }
      target.connections = Math.max(0, target.connections - 1);
      const declines = (this.#declines.get(socket) ?? 0) + 1;
      this.#declines.set(socket, declines);
      if (declines >= MAX_DECLINES) socket.destroy();
      else this.#hand(socket);
    }
  }

  /** Connections the worker held that closed. */
  closed(target: T, count: number): void {
    target.connections = Math.max(0, target.connections - count);
  }

  /**
   * The worker ended: its connections ended with it, and so do those still in transit to it
   * (it may have begun to serve one before it could say so), closed here, so each client sees it.
   */
  gone(target: T): void {
    for (const socket of target.inTransit.values()) socket.destroy();
    target.inTransit.clear();
    target.connections = 0;
  }

  /** A worker became ready: the connections waiting for one go now. */
  readyChanged(): void {
    while (this.#waiting.length > 0) {
      const target = this.#choose();
      if (target === undefined) return;
      this.#send(target, this.#waiting.shift()!);
    }
  }

  /**
   * Stops accepting; connections still waiting for a worker are closed. Handed ones are the
   * workers' to drain (the server's own close callback would wait for them), and those in
   * transit are each closed here once their worker took it or ended.
   */
  close(): void {
    this.#closed = true;
    for (const socket of this.#waiting.splice(0)) socket.destroy();
    if (this.#server.listening) this.#server.close();
  }

  #hand(socket: Socket): void {
    // A client gone before its socket could be handed on: an error here must not end the control plane.
    if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
    if (socket.destroyed) return;
    // Declined by a worker after the port closed: nobody is left to take it.
    if (this.#closed) return void socket.destroy();
    const target = this.#choose();
    if (target !== undefined) return this.#send(target, socket);
    if (this.#waiting.length >= MAX_WAITING) return void socket.destroy();
    this.#waiting.push(socket);
  }

  #send(target: T, socket: Socket): void {
    const seq = ++this.#seq;
    target.connections++;
    target.inTransit.set(seq, socket);
    target.lastSent = seq;
    const failed = () => {
      // Not sent (the channel closed under it): still unread here, it goes to another worker.
      if (!target.inTransit.delete(seq)) return;
      target.connections = Math.max(0, target.connections - 1);
      // To another worker when this one's channel is gone; closed if it still looks ready (no loop).
      if (this.opts.ready(target)) socket.destroy();
      else this.#hand(socket);
    };
    try {
      this.opts.send(target, socket, seq, (err) => {
        if (err !== null) failed();
      });
    } catch {
      failed();
    }
  }

  /** The ready worker with the fewest connections; among equals, the next after the last chosen. */
  #choose(): T | undefined {
    const { targets, ready } = this.opts;
    const n = targets.length;
    let best: T | undefined;
    let at = 0;
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      const t = targets[i]!;
      if (!ready(t) || (best !== undefined && t.connections >= best.connections)) continue;
      best = t;
      at = i;
    }
    if (best !== undefined) this.#next = (at + 1) % n;
    return best;
  }
}
