import type { Random } from '../util/random.js';
import { LeastRequestsSelector } from './least-requests.js';
import { RoundRobinSelector } from './round-robin.js';
import type { Selector } from './selector.js';

export function createSelector(policy: 'least-requests' | 'round-robin', random: Random): Selector {
  return policy === 'round-robin' ? new RoundRobinSelector() : new LeastRequestsSelector(random);
}
