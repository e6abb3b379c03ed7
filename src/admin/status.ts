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
  }>;
  sticky: { store: string; connected: boolean };
}

export function buildStatus(nodes: NodeSet, sticky: { store: string; connected: boolean }): StatusDocument {
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
    })),
    sticky,
  };
}
