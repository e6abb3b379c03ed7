import type { ClusterNode, NodeFlag } from './node.js';

/** What active health checking alone says of a node. */
export type CheckState = 'unknown' | 'healthy' | 'unhealthy';

/**
 * The named inputs a node's state is derived from. Each has one reporter, through its own narrow
 * interface below; only NodeSet stores them and derives `state` from them.
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
}

/** Active health checking reports through this (Traefik's StatusSetter is the model). */
export interface CheckStatusSetter {
  setCheck(node: ClusterNode, verdict: 'healthy' | 'unhealthy', why: string): void;
}

/** Passive failure detection reports through this. */
export interface EjectionSetter {
  /** Ejects until `until`; false when the cluster-wide cap on ejections forbids it. */
  eject(node: ClusterNode, until: number, why: string): boolean;
  /** Ends an ejection early (a passing check, or a failure found to be the cluster's). */
  endEjection(node: ClusterNode, why: string): void;
}

/** Whether a node answers at all; both checks and requests report it. */
export interface ReachabilitySetter {
  setReachable(node: ClusterNode, reachable: boolean, why?: string): void;
}

/** The token guard reports through this. */
export interface QuarantineSetter {
  quarantine(node: ClusterNode, why: string): void;
  release(node: ClusterNode): void;
}

/** Operators (admin API) report through this. */
export interface DrainSetter {
  setDrained(node: ClusterNode, drained: boolean): void;
}

/** Findings about a node are recorded through this (NodeFlags, which words and logs them). */
export interface FlagSetter {
  /** Records the flag; false when the node has one of that code already, or left the set. */
  setFlag(node: ClusterNode, flag: NodeFlag): boolean;
  /** Whether the node had a flag of that code (now cleared). */
  deleteFlag(node: ClusterNode, code: string): boolean;
}
