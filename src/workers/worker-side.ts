import type { ClusterFailure } from '../health/cluster-failure.js';
import type { ControlLink } from './control-link.js';

/** What a request worker's parts take from the control plane: the link to it, and what it last said of the cluster. */
export interface WorkerSide {
  link: ControlLink;
  /** The cluster's shared failures by route class and the nodes token requests avoid, as the last mirror said. */
  cluster: { failures: ReadonlyMap<string, ClusterFailure>; tokensAway: ReadonlySet<string> };
}
