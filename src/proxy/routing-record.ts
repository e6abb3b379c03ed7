import type { UserSource } from '../pins/pins.js';
import type { Route } from '../registry/route.js';
import type { RoutingError } from './routing-error.js';

/** Why the request's (last) node was chosen: its pin, its key's hash, balancing, or a later attempt. */
export type RouteReason = 'pinned' | 'hashed' | 'balanced' | 'retried' | 'failover' | 'reissued' | 'coalesced' | 'cache';

/** The routing line's fields (docs/logging.md), filled in as the request goes and written once when it ends. */
export interface RoutingRecord {
  event: 'request';
  reqId: string;
  /** The X-Request-Id the node and the client saw: the client's own when well formed, else reqId. */
  requestId: string;
  /** The W3C trace id sent to the node in traceparent: the client's trace, or one harbor-lb started. */
  traceId: string;
  client: { ip: string; user?: string; userFrom?: UserSource };
  method: string;
  path: string;
  route: Route;
  node: string | null;
  reason: RouteReason | null;
  affinity: 'upload' | 'session' | 'client' | 'none';
  status: number;
  durationMs: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  error?: RoutingError;
}
