import type { ServerResponse } from 'node:http';
import { requestIdOf } from './request-identity.js';

/** Registry error codes (distribution's errcode names) that the proxy itself answers with. */
export type RegistryErrorCode = 'UNAVAILABLE' | 'UNSUPPORTED' | 'DENIED' | 'UNAUTHORIZED' | 'TOOMANYREQUESTS' | 'BAD_REQUEST' | 'TIMEOUT';

/** The proxy's own failure codes: a closed set, each with one meaning (undici's UND_ERR_* style). */
export type ProxyErrorCode =
  /** The client hung up; never the node's fault. */
  | 'CLIENT_GONE'
  /** A node's 502/503/504 dropped so the request can go to another node. */
  | 'GATEWAY_ERROR_RETRIED'
  /** A node's answer held back by the caller's hook (a token refusal) so the request can go elsewhere. */
  | 'ANSWER_HELD_BACK'
  /** A response held for inspection grew past its cap. */
  | 'BUFFERED_BODY_TOO_LARGE'
  /** undici refused the request as the client shaped it: the client's problem, never a node's. */
  | 'REQUEST_NOT_FORWARDABLE'
  /** A body moved slower than limits.minBodyRate while the proxy waited on the client. */
  | 'CLIENT_TOO_SLOW'
  /** A request body came in too many tiny pieces (tiny-pieces.ts). */
  | 'BODY_IN_TINY_PIECES'
  /** The node was taken out while the attempt waited for its answer: it goes to another node. */
  | 'NODE_TAKEN_OUT'
  /** A coalesced blob pull's body did not match its digest: every client got a cut. */
  | 'BLOB_DIGEST_MISMATCH';

/** A failure of the proxy's own, with a stable code, the HTTP status it maps to and its cause. */
export class ProxyError extends Error {
  constructor(
    readonly code: ProxyErrorCode,
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProxyError';
  }
}

/** Answers with a registry-style JSON error, the shape docker, podman and skopeo print. */
export function sendRegistryError(
  res: ServerResponse,
  isHead: boolean,
  status: number,
  code: RegistryErrorCode,
  message: string,
  detail: Record<string, unknown> | null = null,
  extraHeaders: readonly string[] = [],
): number {
  const body = JSON.stringify({ errors: [{ code, message, detail }] });
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  res.writeHead(status, [
    'content-type',
    'application/json; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
    'docker-distribution-api-version',
    'registry/2.0',
    ...extraHeaders,
    ...requestIdHeader(res),
  ]);
  res.end(isHead ? undefined : body);
  return isHead ? 0 : Buffer.byteLength(body);
}

/** The X-Request-Id of a response harbor-lb answers itself, when the request got one. */
function requestIdHeader(res: ServerResponse): string[] {
  const id = requestIdOf(res);
  return id === undefined ? [] : ['x-request-id', id];
}
