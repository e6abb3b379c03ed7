import type { ClusterNode } from '../nodes/node.js';
import type { Selector } from './selector.js';

/**
 * Smooth weighted round robin (as nginx does it): weights 5,1,1 give a a b a c a a, spread out
 * rather than in bursts. State is per selector, so two proxies in one process do not share it.
 */
export class RoundRobinSelector implements Selector {
  readonly #current = new WeakMap<ClusterNode, number>();

  /** weight: a node's weight for balancing (its configured weight, scaled down while it slow-starts). */
  constructor(private readonly weight: (node: ClusterNode) => number = (node) => node.weight) {}

  select(candidates: readonly ClusterNode[], exclude?: ReadonlySet<ClusterNode>): ClusterNode | undefined {
    let total = 0;
    let best: ClusterNode | undefined;
    let bestScore = -Infinity;
    for (const node of candidates) {
      if (exclude?.has(node)) continue;
      const w = this.weight(node);
      const score = (this.#current.get(node) ?? 0) + w;
      this.#current.set(node, score);
      total += w;
      if (score > bestScore) {
        bestScore = score;
        best = node;
      }
    }
    if (best) this.#current.set(best, bestScore - total);
    return best;
  }
}
