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
 * Each route class has its own episode: a path every node answers 503 (which a client can ask for)
 * neither ends nor stands for a storage outage on pulls.
 */
export class ClusterFailureDetector {
  readonly #last = new Map<ClusterNode, Map<string, { status: number; at: number }>>();
  readonly #current = new Map<string, ClusterFailure>();
  readonly #timers = new Map<string, Timer>();

  constructor(
    /** Settable: a config reload may change it. */
    public window: number,
    private readonly clock: Clock,
    private readonly events: ClusterFailureEvents,
  ) {}

  forget(node: ClusterNode): void {
    this.#last.delete(node);
  }

  /** The oldest episode under way, on any route. */
  get current(): ClusterFailure | undefined {
    return this.#current.values().next().value;
  }

  /** The episode under way on `route`, if any. */
  on(route: string): ClusterFailure | undefined {
    return this.#current.get(route);
  }

  /** Every episode under way, oldest first. */
  all(): ClusterFailure[] {
    return [...this.#current.values()];
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
    const cur = this.#current.get(route);
    if (cur !== undefined && cur.status === status) {
      if (all) {
        cur.lastSeen = now;
        return true;
      }
      this.#end(route);
      return false;
    }
    if (!all) return false;
    if (cur !== undefined) this.#end(route);
    const started: ClusterFailure = { status, route, since: now, lastSeen: now };
    this.#current.set(route, started);
    this.#schedule(route);
    this.events.started(started, routable);
    return true;
  }

  /** A node answered `route` well: its last failure there no longer speaks for the cluster, and an episode on that route is over. */
  succeeded(node: ClusterNode, route: string): void {
    this.#last.get(node)?.delete(route);
    if (this.#current.has(route)) this.#end(route);
  }

  stop(): void {
    for (const timer of this.#timers.values()) this.clock.clearTimeout(timer);
    this.#timers.clear();
  }

  #schedule(route: string): void {
    const cur = this.#current.get(route)!;
    const timer = this.clock.setTimeout(() => {
      this.#timers.delete(route);
      if (this.#current.get(route) !== cur) return;
      const quietFor = this.clock.now() - cur.lastSeen;
      if (quietFor >= this.window) this.#end(route);
      else this.#schedule(route);
    }, Math.max(1, cur.lastSeen + this.window - this.clock.now()));
    timer.unref?.();
    this.#timers.set(route, timer);
  }

  #end(route: string): void {
    const cur = this.#current.get(route)!;
    this.#current.delete(route);
    const timer = this.#timers.get(route);
    if (timer !== undefined) this.clock.clearTimeout(timer);
    this.#timers.delete(route);
    this.events.ended(cur);
  }
}
