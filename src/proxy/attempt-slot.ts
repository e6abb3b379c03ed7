import type { ClusterNode } from '../nodes/node.js';
import type { Exchange } from './exchange.js';
import type { Admitted, PoolKind } from './node-admission.js';
import type { ProxyDeps } from './proxy-deps.js';
import type { Awaitable } from '../util/awaitable.js';

/**
 * A connection slot for the attempt: on the chosen node when it has one for this client now;
 * else, when the request may move, on another available node that has one now; else the wait in
 * the fair queues of the chosen node, and of the others too when the request may move (the first
 * slot any frees is taken).
 */
export function slotFor(
  deps: ProxyDeps,
  ex: Exchange,
  chosen: ClusterNode,
  pool: PoolKind,
  mayMove: boolean,
  tried: ReadonlySet<ClusterNode>,
): Awaitable<Admitted> {
  const now = deps.admission.tryTake(chosen, pool, ex.clientIp);
  if (now !== undefined) return { kind: 'slot', node: chosen, slot: now };
  const others = mayMove ? deps.nodes.availableFor(ex.route).filter((n) => n !== chosen && !tried.has(n)) : [];
  others.sort((a, b) => a.traffic.inflight / a.weight - b.traffic.inflight / b.weight);
  for (const node of others) {
    const slot = deps.admission.tryTake(node, pool, ex.clientIp);
    if (slot !== undefined) return { kind: 'slot', node, slot };
  }
  return waitForSlot(deps, ex, [chosen, ...others], pool);
}

/** The wait in the fair queues of `nodes`, given up when the client leaves. */
async function waitForSlot(deps: ProxyDeps, ex: Exchange, nodes: ClusterNode[], pool: PoolKind): Promise<Admitted> {
  let stop: (() => void) | undefined;
  const onClose = () => stop?.();
  ex.res.once('close', onClose);
  const admitted = await deps.admission.wait(nodes, pool, ex.clientIp, (s) => (stop = s));
  ex.res.off('close', onClose);
  return admitted;
}
