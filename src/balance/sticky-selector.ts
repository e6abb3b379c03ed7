import type { ClusterNode } from '../nodes/node.js';
import type { Affinity, AffinityKey } from './affinity.js';
import type { Selector } from './selector.js';

/** How the first node of a request was found. */
export type ChoiceReason = 'pinned' | 'hashed' | 'balanced';

/**
 * Stickiness as a selector that wraps the balancing one (Caddy's and Traefik's shape): the node a
 * request's key is pinned to, else the key's rendezvous choice, else (and for every retry) the
 * fallback selector. The node a key ends up on is written back as its pin.
 */
export class StickySelector {
  constructor(
    private readonly affinity: Affinity | undefined,
    private fallback: Selector,
  ) {}

  /** A new balancing policy from a config reload; requests under way keep the one they began with. */
  setFallback(fallback: Selector): void {
    this.fallback = fallback;
  }

  /** Starts choosing for one request; reads its pin (the only asynchronous step). */
  async begin(key: AffinityKey | undefined): Promise<NodeChoice> {
    const affinity = key === undefined ? undefined : this.affinity;
    const pin = affinity ? await affinity.lookup(key!) : { stale: false };
    return new NodeChoice(affinity, this.fallback, key, pin.node, pin.stale);
  }
}

/** The choices of one request, attempt after attempt. */
export class NodeChoice {
  readonly first: ChoiceReason;
  #attempts = 0;

  constructor(
    private readonly affinity: Affinity | undefined,
    private readonly fallback: Selector,
    private readonly key: AffinityKey | undefined,
    private readonly pinned: ClusterNode | undefined,
    private readonly stale: boolean,
  ) {
    this.first = pinned ? 'pinned' : affinity ? 'hashed' : 'balanced';
  }

  /**
   * The node for the next attempt, from `available` minus the nodes in `tried` (which may hold
   * nodes ruled out before the first attempt); undefined when none is left.
   */
  next(available: readonly ClusterNode[], tried: ReadonlySet<ClusterNode>): ClusterNode | undefined {
    const first = ++this.#attempts === 1;
    if (first && this.pinned && !tried.has(this.pinned)) return this.pinned;
    const affinity = this.affinity;
    if (affinity === undefined) return this.fallback.select(available, tried);
    const node = first ? affinity.hashed(this.key!, tried.size === 0 ? available : available.filter((n) => !tried.has(n))) : this.fallback.select(available, tried);
    if (node === undefined) return undefined;
    // A new key's first choice is claimed (the first writer among instances wins); a stale pin,
    // or a node that failed this request, is replaced.
    if (first && !this.stale) affinity.claim(this.key!, node);
    else affinity.pin(this.key!, node);
    return node;
  }
}
