import type { ServerResponse } from 'node:http';

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
  | 'CLIENT_TOO_SLOW';

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

/** Codes of failures to reach a node at all (system, undici socket and TLS errors): the node's problem. */
const CONNECTION_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_HEADERS_TIMEOUT']);
const TLS_CODE = /^(?:ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_)/;

/**
 * Whether an error raised before any byte reached the node says the node cannot be reached (retry
 * elsewhere, count against it), as opposed to undici refusing the request itself (the client's).
 */
export function isConnectionFailure(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return /^E[A-Z0-9]+$/.test(code) || CONNECTION_CODES.has(code) || TLS_CODE.test(code);
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
  ]);
  res.end(isHead ? undefined : body);
  return isHead ? 0 : Buffer.byteLength(body);
}

/**
 * An answer undici could not parse (a broken status line, a NUL in a header): undici raises these
 * without a code; the reason is in the message's parentheses.
 */
function parserReason(err: Error | undefined): string | undefined {
  if (err?.name !== 'HTTPParserError') return undefined;
  return /\(([^)]{1,120})\)\s*$/.exec(err.message)?.[1] ?? 'unparseable';
}

/**
 * How a node failure reads in the routing line's `error`: its code, and for an unparseable answer
 * the parser's reason (`NODE_ANSWER_UNPARSEABLE: Invalid status code`).
 */
export function nodeFailureLabel(err: Error | undefined): string {
  const f = describeNodeFailure(err);
  return f.detail === undefined ? f.code : `${f.code}: ${f.detail}`;
}

/** What the client is told when a node failed before answering: 502 for refused/reset, 504 for timeouts. */
export function describeNodeFailure(err: Error | undefined): { status: number; code: string; message: string; detail?: string } {
  const reason = parserReason(err);
  if (reason !== undefined) return { status: 502, code: 'NODE_ANSWER_UNPARSEABLE', message: `the node's answer could not be parsed (${reason})`, detail: reason };
  const code = (err as { code?: string } | undefined)?.code ?? 'UNKNOWN';
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { status: 504, code, message: 'the node did not accept a connection in time' };
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { status: 504, code, message: 'the node did not answer in time' };
    case 'ECONNREFUSED':
      return { status: 502, code, message: 'the node refused the connection' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { status: 502, code, message: 'the node name does not resolve' };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { status: 502, code, message: 'the node cannot be reached' };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return { status: 502, code, message: 'the node closed the connection' };
    default:
      return { status: 502, code, message: 'the node failed' };
  }
}
