import type { NodeSet } from '../nodes/node-set.js';

/** The `/-/status` document (shape fixed by design.md; fields are only ever added). */
export interface StatusDocument {
  nodes: Array<{
    name: string;
    url: string;
    state: string;
    since: string;
    why: string;
    weight: number;
    flags: Array<{ code: string; message: string; since: string }>;
    inflight: number;
    requests: number;
    failures: number;
    lastCheck: { at: string; ok: boolean; detail: string } | null;
    consecutiveFailures: number;
    ejectedUntil: string | null;
  }>;
  sticky: { store: string; connected: boolean; entries?: number };
}

export function buildStatus(nodes: NodeSet, sticky: StatusDocument['sticky']): StatusDocument {
  return {
    nodes: nodes.all.map((n) => ({
      name: n.name,
      url: n.url,
      state: n.state,
      since: new Date(n.stateSince).toISOString(),
      why: n.stateWhy,
      weight: n.weight,
      flags: [...n.flags.values()],
      inflight: n.inflight,
      requests: n.requests,
      failures: n.failures,
      lastCheck: n.lastCheck ? { at: new Date(n.lastCheck.at).toISOString(), ok: n.lastCheck.ok, detail: n.lastCheck.detail } : null,
      consecutiveFailures: n.consecutiveFailures,
      ejectedUntil: n.ejectedUntil > 0 ? new Date(n.ejectedUntil).toISOString() : null,
    })),
    sticky,
  };
}
