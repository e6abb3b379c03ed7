import type { ClusterNode } from '../nodes/node.js';

/** FNV-1a over UTF-16 code units of `s`, from the state `h` (so a key's hash is continued per node). */
function fnv1a(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** murmur3's finalizer, so close keys land far apart. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const FNV_OFFSET = 0x811c9dc5;

/**
 * Weighted rendezvous (highest random weight) order of `nodes` for `key`: every instance computes
 * the same order from the same key and node names, with no shared state, and removing a node only
 * moves the keys that were on it. Score: -weight / ln(u), u uniform in (0, 1) from the hash of
 * `key`, a NUL and the node's name. It runs on every request with a pin key: the key is hashed
 * once and continued per node, and the few nodes are put in order by insertion.
 */
export function rendezvousOrder(key: string, nodes: readonly ClusterNode[]): ClusterNode[] {
  const keyed = fnv1a('\u0000', fnv1a(key, FNV_OFFSET));
  const order: ClusterNode[] = [];
  const scores: number[] = [];
  for (const n of nodes) {
    const u = (mix(fnv1a(n.name, keyed)) + 0.5) / 4294967296;
    const score = -n.weight / Math.log(u);
    let i = order.length;
    // Ties keep the nodes' given order, as a stable sort would.
    while (i > 0 && scores[i - 1]! < score) {
      order[i] = order[i - 1]!;
      scores[i] = scores[i - 1]!;
      i--;
    }
    order[i] = n;
    scores[i] = score;
  }
  return order;
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
