import type { NodeHealth } from '../health/node-health.js';
import type { ClockSkew } from '../health/clock-skew.js';
import type { OutlierDetector } from '../health/outlier-detector.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { ConfigStatus } from '../config/live-config.js';
import type { WorkerStatus } from '../workers/worker-pool.js';
import type { CacheStats } from '../coalesce/blob-cache.js';

/** The `/-/status` document: a contract (docs/status-page.md, docs/operations.md); fields are only ever added. */
export interface StatusDocument {
  nodes: Array<{
    name: string;
    url: string;
    state: string;
    since: string;
    why: string;
    weight: number;
    /** `fix`: what the operator does about it, when the raiser knows. */
    flags: Array<{ code: string; message: string; since: string; fix?: string }>;
    inflight: number;
    /** Requests waiting for one of the node's connections (all busy: the fair queue, limits). */
    queued: number;
    requests: number;
    failures: number;
    lastCheck: { at: string; ok: boolean; detail: string } | null;
    /** The last active check results, oldest first (bounded; empty while checks are off). */
    history: Array<{ at: string; ok: boolean; detail: string }>;
    consecutiveFailures: number;
    ejectedUntil: string | null;
    /** The inputs `state` is derived from. */
    conditions: { check: string; ejected: boolean; quarantine: string | null; drained: boolean; reachable: boolean };
    /** The node's clock minus harbor-lb's (median of recent samples), null before any sample. */
    clockOffsetMs: number | null;
    /** Removed from the config by a reload: draining, it leaves the list once idle. */
    removed: boolean;
    /** Routes the node is out of while it serves the others (a failing component, health.componentRoutes), and why; null when none. */
    routesOut: { routes: string[]; why: string } | null;
  }>;
  sticky: { store: string; connected: boolean; entries?: number };
  /** Rules that span nodes, when they are in force. */
  /** degraded: the oldest cluster-wide failure under way (each route class has its own). */
  cluster: { panic: boolean; degraded: { status: number; since: string; route: string } | null; maxEjected: number };
  /** The config in force: its generation (1 at start, +1 per reload), when loaded, what waits for a restart. */
  config?: ConfigStatus;
  /**
   * The processes that serve client traffic (proxy.workers), with what each has handled; one entry,
   * this process, when it serves the traffic itself.
   */
  workers?: WorkerStatus[];
  /** The blob cache (cache.dir): its folder, limit, and what it keeps now. */
  cache?: CacheStats;
}

export function buildStatus(
  nodes: NodeSet,
  health: NodeHealth,
  outliers: OutlierDetector,
  sticky: StatusDocument['sticky'],
  skew?: ClockSkew,
  config?: ConfigStatus,
  queued: (node: ClusterNode) => number = () => 0,
): StatusDocument {
  const degraded = outliers.clusterFailure;
  return {
    nodes: nodes.all.map((n) => {
      const c = n.conditions;
      const check = health.lastCheck(n);
      const ejected = nodes.isEjected(n);
      return {
        name: n.name,
        url: n.url,
        state: n.state,
        since: new Date(n.stateSince).toISOString(),
        why: n.stateWhy,
        weight: n.weight,
        flags: [...n.flags.values()],
        inflight: n.traffic.inflight,
        queued: queued(n),
        requests: n.traffic.requests,
        failures: n.traffic.failures,
        lastCheck: check ? { at: new Date(check.at).toISOString(), ok: check.ok, detail: check.detail } : null,
        history: health.history(n).map((h) => ({ at: new Date(h.at).toISOString(), ok: h.ok, detail: h.detail })),
        consecutiveFailures: outliers.consecutiveFailures(n),
        ejectedUntil: ejected ? new Date(c.ejectedUntil).toISOString() : null,
        conditions: { check: c.check, ejected, quarantine: c.quarantine ?? null, drained: c.drained, reachable: c.reachable },
        clockOffsetMs: ((o) => (o === undefined ? null : Math.round(o)))(skew?.offset(n)),
        removed: nodes.isRemoved(n),
        routesOut: c.routesOut.length > 0 ? { routes: [...c.routesOut], why: c.routesOutWhy } : null,
      };
    }),
    sticky,
    cluster: {
      panic: nodes.panic,
      degraded: degraded ? { status: degraded.status, since: new Date(degraded.since).toISOString(), route: degraded.route } : null,
      maxEjected: nodes.maxEjected(),
    },
    ...(config === undefined ? {} : { config }),
  };
}
