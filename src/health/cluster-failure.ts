import type { ClusterNode } from '../nodes/node.js';
import type { Clock, Timer } from '../util/clock.js';

export interface ClusterFailure {
  /** The gateway status every node answered with. */
  status: number;
  since: number;
  lastSeen: number;
}

export interface ClusterFailureEvents {
  started(f: ClusterFailure, nodes: readonly ClusterNode[]): void;
  ended(f: ClusterFailure): void;
}

/**
 * Tells a node's failure from the cluster's: when every routable node answered the same 5xx
 * within `window` (and none answered well since), the cause is shared (storage, database), and
 * ejecting nodes would only turn it into an outage of the proxy's own making. The episode ends
 * once `window` passes without that failure.
 */
export class ClusterFailureDetector {
  readonly #last = new Map<ClusterNode, { status: number; at: number }>();
  #current: ClusterFailure | undefined;
  #timer: Timer | undefined;

  constructor(
    private readonly window: number,
    private readonly clock: Clock,
    private readonly events: ClusterFailureEvents,
  ) {}

  get current(): ClusterFailure | undefined {
    return this.#current;
  }

  /** A node answered `status` (502/503/504); true when that is the cluster's failure, not the node's. */
  failed(node: ClusterNode, status: number, routable: readonly ClusterNode[]): boolean {
    const now = this.clock.now();
    this.#last.set(node, { status, at: now });
    const cur = this.#current;
    if (cur !== undefined && cur.status === status) {
      cur.lastSeen = now;
      return true;
    }
    if (routable.length === 0 || !routable.includes(node)) return false;
    const all = routable.every((n) => {
      const f = this.#last.get(n);
      return f !== undefined && f.status === status && now - f.at <= this.window;
    });
    if (!all) return false;
    if (cur !== undefined) this.#end();
    this.#current = { status, since: now, lastSeen: now };
    this.#schedule();
    this.events.started(this.#current, routable);
    return true;
  }

  /** A node answered well: its last failure no longer speaks for the cluster. */
  succeeded(node: ClusterNode): void {
    this.#last.delete(node);
  }

  stop(): void {
    if (this.#timer) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const cur = this.#current!;
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#current !== cur) return;
      const quietFor = this.clock.now() - cur.lastSeen;
      if (quietFor >= this.window) this.#end();
      else this.#schedule();
    }, Math.max(1, cur.lastSeen + this.window - this.clock.now()));
    this.#timer.unref?.();
  }

  #end(): void {
    const cur = this.#current!;
    this.#current = undefined;
    this.stop();
    this.events.ended(cur);
  }
}
