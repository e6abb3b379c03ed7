import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionCookie, UserSource } from '../pins/pins.js';
import type { Route } from '../registry/route.js';
import type { RequestBody } from './request-body.js';
import type { RoutingRecord } from './routing-record.js';
import type { BodyTee } from '../coalesce/blob-flights.js';

/** One client request on its way to the nodes: what was read from it, and its routing line. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** What the node is sent: the normalized path and the query as the client sent it. */
  url: string;
  path: string;
  /** What a node is sent; an exchange goes to a node only once request-check's `unforwardable` found nothing wrong with them. */
  headers: readonly string[];
  body: RequestBody | undefined;
  record: RoutingRecord;
  route: Route;
  /** Which answers a failure shared by every node is judged on: the /v2/ ping needs no storage, pulls do. */
  failureClass: string;
  clientIp: string;
  user: string | undefined;
  userFrom: UserSource | undefined;
  /** The bearer token exactly as the node reads it (credentials.ts), when there is one. */
  bearer: string | undefined;
  session: SessionCookie | undefined;
  /** The client asked for a byte range: a node's cut of that answer is the client's choice of range. */
  ranged: boolean;
  /** A blob pull other clients may join (coalesce.enabled): set by the coalescer, passed to the forward. */
  tee?: BodyTee;
}

/** Which answers a failure shared by every node is judged on: the /v2/ ping needs no storage, pulls do. */
export function failureClassOf(route: Route, path: string): string {
  return route === 'v2' && (path === '/v2/' || path === '/v2') ? 'v2-base' : route;
}

/** Bodies up to this size (with a declared length) are read whole so they can be replayed. */
export const REPLAYABLE_BODY = 64 * 1024;
