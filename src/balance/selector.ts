import type { ClusterNode } from '../nodes/node.js';

/** Picks one node for a request from the nodes that may take traffic. */
export interface Selector {
  /** `exclude` holds nodes already tried by this request; undefined when nothing is left. */
  select(candidates: readonly ClusterNode[], exclude?: ReadonlySet<ClusterNode>): ClusterNode | undefined;
}
