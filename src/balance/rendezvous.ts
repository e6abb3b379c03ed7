import type { ClusterNode } from '../nodes/node.js';

/** FNV-1a over UTF-16 code units, then murmur3's finalizer so close keys land far apart. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Weighted rendezvous (highest random weight) order of `nodes` for `key`: every instance computes
 * the same order from the same key and node names, with no shared state, and removing a node only
 * moves the keys that were on it. Score: -weight / ln(u), u uniform in (0, 1) from the hash.
 */
export function rendezvousOrder(key: string, nodes: readonly ClusterNode[]): ClusterNode[] {
  const scored = nodes.map((n) => {
    const u = (hash32(`${key}\u0000${n.name}`) + 0.5) / 4294967296;
    return { n, score: -n.weight / Math.log(u) };
  });
  scored.sort((a, b) => b.score - a.score);
  return scored.map((s) => s.n);
}

/**
 * The first node in rendezvous order that is not overloaded: in-flight requests at most
 * (1 + loadFactor) times the average with this request counted. One address with one robot
 * account (a CI farm behind NAT) cannot pile onto a single node.
 */
export function boundedLoadPick(order: readonly ClusterNode[], loadFactor: number): ClusterNode | undefined {
  if (order.length === 0) return undefined;
  let total = 1;
  let weights = 0;
  for (const n of order) {
    total += n.traffic.inflight;
    weights += n.weight;
  }
  for (const n of order) {
    const cap = Math.ceil((1 + loadFactor) * total * (n.weight / weights));
    if (n.traffic.inflight + 1 <= cap) return n;
  }
  return order[0];
}
