import type { ClusterNode, NodeState } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { NodeSlot } from '../nodes/node-slot.js';
import type { Clock } from '../util/clock.js';

/**
 * balance.slowStart: a node that comes back (or is added) takes a growing share of balanced
 * traffic, from a tenth of its weight to all of it, linearly over the window, while its caches and
 * database pools warm up (as Envoy's and NGINX Plus's slow start do). Only the balancing policies
 * read it: pinned and hashed requests go where their pin or hash says, as before.
 */
export class SlowStart {
  #window: number;
  readonly #since: NodeSlot<{ at: number | undefined }>;

  constructor(
    window: number,
    nodes: NodeSet,
    private readonly clock: Clock,
  ) {
    this.#window = window;
    this.#since = nodes.slot<{ at: number | undefined }>(() => ({ at: undefined }));
    nodes.on('state', ({ node, from, to }: { node: ClusterNode; from: NodeState; to: NodeState }) => {
      if (to === 'healthy' && TOOK_NO_NEW_TRAFFIC.has(from)) this.#since.get(node).at = clock.now();
    });
    nodes.on('added', (node: ClusterNode) => {
      this.#since.get(node).at = clock.now();
    });
  }

  /** A reload's new window; ramps under way follow it. */
  configure(window: number): void {
    this.#window = window;
  }

  /** The node's weight for balancing now. */
  readonly weight = (node: ClusterNode): number => {
    const w = node.weight;
    const at = this.#since.peek(node)?.at;
    if (this.#window <= 0 || at === undefined) return w;
    const t = (this.clock.now() - at) / this.#window;
    return t >= 1 ? w : w * (FIRST_SHARE + (1 - FIRST_SHARE) * Math.max(0, t));
  };
}

/** Its share of its weight when its ramp begins: never nothing, so it is tried at all. */
const FIRST_SHARE = 0.1;

/** States in which a node took no new traffic: back from one, it ramps. ('unknown' at start is not one: every node starts there.) */
const TOOK_NO_NEW_TRAFFIC: ReadonlySet<NodeState> = new Set(['unhealthy', 'quarantined', 'draining']);
