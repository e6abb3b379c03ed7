import type { ClusterNode, NodeFlag } from './node.js';
import type { Route } from '../registry/route.js';
import type { CheckState } from './node-conditions.js';

export type { CheckState, NodeConditions } from './node-conditions.js';

/** Active health checking reports through this (Traefik's StatusSetter is the model). */
export interface CheckStatusSetter {
  setCheck(node: ClusterNode, verdict: 'healthy' | 'unhealthy', why: string): void;
  /** The routes the node's failing components take it out of (empty: none). */
  setRoutesOut(node: ClusterNode, routes: readonly Route[], why: string): void;
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
