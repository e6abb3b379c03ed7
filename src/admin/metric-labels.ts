import type { ForwardPhase } from '../proxy/forward.js';
import { ROUTES, type Route } from '../registry/route.js';

/**
 * Label values taken from requests come from closed sets, so no client can add series (or break
 * the exposition) by what it sends: a method outside the list is OTHER, a status becomes its class.
 * Indexes let the request path find its series in arrays instead of building keys.
 */
export { ROUTES };
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OTHER'] as const;
export const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** A value's place in its closed set, or the set's last place (its catch-all) when it is not in it. */
function indexer<T extends string>(values: readonly T[]): (value: string) => number {
  const at = new Map<string, number>(values.map((v, i) => [v, i]));
  const last = values.length - 1;
  return (value) => at.get(value) ?? last;
}

export const routeIndex: (route: Route) => number = indexer(ROUTES);

/** Methods are case-sensitive (RFC 9110): `get` is not GET and counts as OTHER. */
export const methodIndex: (method: string) => number = indexer(METHODS);

/** 0 (no answer was sent: the client left first) is `none`; anything outside 100-599 is `other`. */
export function statusClassIndex(status: number): number {
  if (status === 0) return 0;
  if (status < 100 || status > 599) return 6;
  return Math.floor(status / 100);
}

export function methodLabel(method: string): string {
  return METHODS[methodIndex(method)]!;
}

export function statusClassLabel(status: number): string {
  return STATUS_CLASSES[statusClassIndex(status)]!;
}

/** Why another attempt followed: the outcome of the one before it. */
export type RetryCause = 'not_sent' | 'no_response' | 'gateway_error' | 'token_rejected' | 'bad_token' | 'other';

export function retryCause(phase: ForwardPhase): RetryCause {
  switch (phase) {
    case 'not-sent':
      return 'not_sent';
    case 'no-response':
      return 'no_response';
    case 'gateway-error':
      return 'gateway_error';
    case 'held-back':
      return 'token_rejected';
    case 'buffered':
      return 'bad_token';
    default:
      return 'other';
  }
}
