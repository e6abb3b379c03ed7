import type { ForwardOutcome } from './forward.js';
import type { RequestBody } from './forward.js';

/**
 * Whether an attempt that failed may be sent again, to another node. Only what cannot have changed
 * anything on the node is: a request that never reached it (any method, if its body is untouched
 * or was read whole up front), or a body-less GET/HEAD that got no answer or a 502/503/504. A
 * partly sent upload body is never replayed (the registry would store it twice). Token refusals
 * and token reissues are decided by the token rules, not here.
 */
export function mayRetry(o: ForwardOutcome, method: string, body: RequestBody | undefined): boolean {
  if (body?.touched && body.buffered === undefined) return false;
  if (o.phase === 'not-sent') return true;
  return (o.phase === 'no-response' || o.phase === 'gateway-error') && isBodylessRead(method, body);
}

/** A GET or HEAD without a body: safe to send to several nodes in turn. */
export function isBodylessRead(method: string, body: RequestBody | undefined): boolean {
  return body === undefined && (method === 'GET' || method === 'HEAD');
}

/**
 * Whether the retry budget still has to allow this retry: a request that never reached a node put
 * no load on it, so failing over from a refused connection is always allowed (else a dead node
 * could exhaust the budget and turn into 502s what a live node would serve); a 502/503/504 was
 * only dropped because the budget allowed its retry when it was dropped.
 */
export function needsBudget(o: ForwardOutcome): boolean {
  // An attempt ended because its node was taken out is failover too: that node serves nothing now.
  if ((o.error as { code?: string } | undefined)?.code === 'NODE_TAKEN_OUT') return false;
  return o.phase !== 'not-sent' && o.phase !== 'gateway-error';
}
