import type { Route } from '../registry/route.js';

/** What active health checking alone says of a node. */
export type CheckState = 'unknown' | 'healthy' | 'unhealthy';

/**
 * The named inputs a node's state is derived from. Each has one reporter, through its own narrow
 * interface (conditions.ts); only NodeSet stores them and derives `state` from them.
 */
export interface NodeConditions {
  /** Active checks (health/): the verdict after the healthy/unhealthy thresholds. */
  readonly check: CheckState;
  readonly checkWhy: string;
  /** Passive ejection (health/): out until this time, 0 when not ejected. */
  readonly ejectedUntil: number;
  readonly ejectionWhy: string;
  /** Trust quarantine asked for by the token guard; in force only while another node can serve. */
  readonly quarantine: string | undefined;
  /** Operator drain (admin). */
  readonly drained: boolean;
  /** Whether the node's last connection attempt (check or request) got an HTTP answer. */
  readonly reachable: boolean;
  /** Routes the node is out of while it stays in for the others (health.componentRoutes); empty when none. */
  readonly routesOut: readonly Route[];
  readonly routesOutWhy: string;
}
