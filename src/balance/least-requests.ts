import type { ClusterNode } from '../nodes/node.js';
import type { Random } from '../util/random.js';
import type { Selector } from './selector.js';

/**
 * Power of two choices: draw two distinct nodes at random, keep the one with fewer in-flight
 * requests per unit of weight. Near least-loaded without a scan, and without the herd that a
 * strict "least" causes when several proxies share one view.
 */
export class LeastRequestsSelector implements Selector {
  constructor(
    private readonly random: Random,
    /** A node's weight for balancing (its configured weight, scaled down while it slow-starts). */
    private readonly weight: (node: ClusterNode) => number = (node) => node.weight,
  ) {}

  select(candidates: readonly ClusterNode[], exclude?: ReadonlySet<ClusterNode>): ClusterNode | undefined {
    const pool = exclude && exclude.size > 0 ? candidates.filter((n) => !exclude.has(n)) : candidates;
    const n = pool.length;
    if (n <= 1) return pool[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = pool[i]!;
    const b = pool[j]!;
    // Compare (inflight+1)/weight without dividing: a new request lands on the less loaded.
    const la = (a.traffic.inflight + 1) * this.weight(b);
    const lb = (b.traffic.inflight + 1) * this.weight(a);
    return la <= lb ? a : b;
  }
}
