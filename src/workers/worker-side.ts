import type { ClusterFailure } from '../health/cluster-failure.js';
import type { ControlLink } from './control-link.js';

/** What a request worker's parts take from the control plane: the link to it, and what it last said of the cluster. */
export interface WorkerSide {
  link: ControlLink;
  /** The cluster's shared failure and the nodes token requests avoid, as the last mirror said. */
  cluster: { failure: ClusterFailure | undefined; tokensAway: ReadonlySet<string> };
}
