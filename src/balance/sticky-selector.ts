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
    const pin = affinity ? await affinity.lookup(key!) : { stale: false, at: undefined };
    // Writes go where the pin was found (a visitor's session cookie stays a visitor pin).
    const at = key !== undefined && pin.at !== undefined && pin.at !== key.key ? { ...key, key: pin.at } : key;
    return new NodeChoice(affinity, this.fallback, at, pin.node, pin.stale);
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
   * nodes ruled out before the first attempt); undefined when none is left. Choosing writes
   * nothing: a pin is written only from what a node answers (see `answered`).
   */
  next(available: readonly ClusterNode[], tried: ReadonlySet<ClusterNode>): ClusterNode | undefined {
    const first = ++this.#attempts === 1;
    if (first && this.pinned && !tried.has(this.pinned)) return this.pinned;
    const affinity = this.affinity;
    if (affinity === undefined || !first) return this.fallback.select(available, tried);
    return affinity.hashed(this.key!, tried.size === 0 ? available : available.filter((n) => !tried.has(n)));
  }

  /**
   * `node` answered `status`. Pins come from evidence, so this writes the key's pin only when
   * the answer is some: a 2xx to a request of that upload (the node knows it); for a session, only
   * moving a pin it had (sessions are pinned from the Set-Cookie that starts them, never from a
   * cookie a client made up); for a client, only an identity vouched for (a verified token's
   * subject, or `vouched`: the node's token service accepted the Basic user's login in this very
   * answer: a good token issued to that user, or without token checks its 200).
   * A new key's pin is claimed (the first writer among instances wins); one that moved is replaced.
   */
  answered(node: ClusterNode, status: number, vouched = false): void {
    const { affinity, key } = this;
    if (affinity === undefined || key === undefined || node === this.pinned || status < 200 || status >= 300) return;
    const hadPin = this.pinned !== undefined || this.stale;
    if (key.kind === 'session' && !hadPin) return;
    // Anonymous is no identity: only a name sent with Basic auth can be vouched for by an answer.
    if (key.kind === 'client' && key.vouched !== true && !(vouched && key.basicUser !== undefined && key.basicUser !== '')) return;
    if (hadPin) affinity.pin(key, node);
    else affinity.claim(key, node);
  }
}
