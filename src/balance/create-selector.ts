import type { ClusterNode } from '../nodes/node.js';
import type { Random } from '../util/random.js';
import { LeastRequestsSelector } from './least-requests.js';
import { RoundRobinSelector } from './round-robin.js';
import type { Selector } from './selector.js';

/** weight: a node's weight for balancing; its configured weight unless told otherwise (slow start). */
export function createSelector(policy: 'least-requests' | 'round-robin', random: Random, weight?: (node: ClusterNode) => number): Selector {
  return policy === 'round-robin' ? new RoundRobinSelector(weight) : new LeastRequestsSelector(random, weight);
}
