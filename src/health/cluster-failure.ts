import type { ClusterNode } from '../nodes/node.js';
import type { Clock, Timer } from '../util/clock.js';

export interface ClusterFailure {
  /** The gateway status every node answered with. */
  status: number;
  /** The route class it was answered on (a storage outage fails pulls, not token requests). */
  route: string;
  since: number;
  lastSeen: number;
}

export interface ClusterFailureEvents {
  started(f: ClusterFailure, nodes: readonly ClusterNode[]): void;
  ended(f: ClusterFailure): void;
}

/**
 * Tells a node's failure from the cluster's: when every routable node answered the same 5xx on
 * the same route class within `window`, with no good answer on that route since, the cause is
 * shared (storage, database), and ejecting nodes would only turn it into an outage of the
 * proxy's own making. Every failure re-checks that this still holds: the episode ends as soon as
 * one node answers that route well, or a node fails alone, or `window` passes without the failure.
 */
export class ClusterFailureDetector {
  readonly #last = new Map<ClusterNode, Map<string, { status: number; at: number }>>();
  #current: ClusterFailure | undefined;
  #timer: Timer | undefined;

  constructor(
    /** Settable: a config reload may change it. */
    public window: number,
    private readonly clock: Clock,
    private readonly events: ClusterFailureEvents,
  ) {}

  forget(node: ClusterNode): void {
    this.#last.delete(node);
  }

  get current(): ClusterFailure | undefined {
    return this.#current;
  }

  /**
   * Whether a failure of the node's within `window` is held (on any route): a good answer there
   * would take it back. An older one no longer counts toward a cluster-wide failure.
   */
  holds(node: ClusterNode): boolean {
    const byRoute = this.#last.get(node);
    if (byRoute === undefined) return false;
    const now = this.clock.now();
    for (const f of byRoute.values()) if (now - f.at <= this.window) return true;
    return false;
  }

  /** A node answered `status` (502/503/504) on `route`; true when that is the cluster's failure, not the node's. */
  failed(node: ClusterNode, status: number, route: string, routable: readonly ClusterNode[]): boolean {
    const now = this.clock.now();
    let byRoute = this.#last.get(node);
    if (byRoute === undefined) this.#last.set(node, (byRoute = new Map()));
    byRoute.set(route, { status, at: now });
    const all =
      routable.length > 0 &&
      routable.includes(node) &&
      routable.every((n) => {
        const f = this.#last.get(n)?.get(route);
        return f !== undefined && f.status === status && now - f.at <= this.window;
      });
    const cur = this.#current;
    if (cur !== undefined && cur.status === status && cur.route === route) {
      if (all) {
        cur.lastSeen = now;
        return true;
      }
      this.#end();
      return false;
    }
    if (!all) return false;
    if (cur !== undefined) this.#end();
    this.#current = { status, route, since: now, lastSeen: now };
    this.#schedule();
    this.events.started(this.#current, routable);
    return true;
  }

  /** A node answered `route` well: its last failure there no longer speaks for the cluster, and an episode on that route is over. */
  succeeded(node: ClusterNode, route: string): void {
    this.#last.get(node)?.delete(route);
    if (this.#current?.route === route) this.#end();
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
