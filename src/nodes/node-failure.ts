/**
 * What went wrong talking to a node, read from the error once, for everyone who talks to nodes:
 * the request path, active health checks, the trust probe. One answer to "is this a connection
 * failure", one code for the routing line, one status and message for the client.
 */

/** Node failures by the code they show in the routing line (besides TLS failures, see below). */
export const NODE_FAILURE_CODES = [
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  /** An answer that is not HTTP/1.1 (undici's parser error; its reason follows as detail). */
  'NODE_ANSWER_UNPARSEABLE',
  /** The node was taken out (ejected, unreachable) while the request waited for its answer. */
  'NODE_TAKEN_OUT',
  /** harbor-lb itself ran short (file descriptors, memory, local ports): no node's doing; the raw code follows as detail. */
  'LOCAL_RESOURCES',
  /** Any other failure; the raw code follows as detail. */
  'NODE_FAILED',
] as const;

/**
 * TLS failures keep OpenSSL's and Node's own names (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`…): operators search for them as they are.
 */
const TLS_CODE = /^(?:ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_)[A-Z0-9_]+$/;

export type NodeFailureCode = (typeof NODE_FAILURE_CODES)[number];

/** A node failure, described once. */
export interface NodeFailure {
  /** The code in the routing line: one of NODE_FAILURE_CODES, or a TLS code. */
  code: string;
  /** After the code in the routing line (`NODE_ANSWER_UNPARSEABLE: Invalid status code`). */
  detail?: string;
  /** The status harbor-lb answers with in the node's stead: 504 for timeouts, 503 for its own shortage, else 502. */
  status: 502 | 503 | 504;
  /** What the client's registry error says. */
  message: string;
  /**
   * No connection was made: nothing reached the node (safe to send anywhere else), and the node
   * does not answer at all (taken out at once: no client can cause it).
   */
  notConnected: boolean;
  /** A kept-alive connection the node had closed meanwhile: sending again on a fresh one is right. */
  staleConnection: boolean;
}

const KNOWN = new Set<string>(NODE_FAILURE_CODES);
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/**
 * System errors that say harbor-lb's own resources ran short while it connected or wrote: out of
 * file descriptors (EMFILE, ENFILE), of kernel memory (ENOBUFS, ENOMEM), of local ports
 * (EADDRNOTAVAIL). They say nothing of the node, and count against none (a probe saw a worker at
 * its descriptor limit take every node out at once).
 */
const LOCAL_SHORTAGE: Readonly<Record<string, string>> = {
  EMFILE: 'harbor-lb is out of file descriptors (raise its limit: LimitNOFILE, ulimit -n)',
  ENFILE: 'the host is out of file descriptors',
  ENOBUFS: 'harbor-lb is out of memory for connections',
  ENOMEM: 'harbor-lb is out of memory for connections',
  EADDRNOTAVAIL: 'harbor-lb is out of local ports to connect from',
};

/** Whether `err` is harbor-lb's own shortage (LOCAL_SHORTAGE), not the node's failure. */
export function isLocalShortage(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && Object.hasOwn(LOCAL_SHORTAGE, code);
}

const MESSAGES: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: 'the node did not accept a connection in time',
  UND_ERR_HEADERS_TIMEOUT: 'the node did not answer in time',
  UND_ERR_BODY_TIMEOUT: 'the node stopped sending its answer',
  ECONNREFUSED: 'the node refused the connection',
  ENOTFOUND: 'the node name does not resolve',
  EAI_AGAIN: 'the node name does not resolve',
  EHOSTUNREACH: 'the node cannot be reached',
  ENETUNREACH: 'the node cannot be reached',
  NODE_TAKEN_OUT: 'the node was taken out of rotation while the request waited for its answer',
  ECONNRESET: 'the node closed the connection',
  UND_ERR_SOCKET: 'the node closed the connection',
  EPIPE: 'the node closed the connection',
};

/** Reads a failure of an exchange with a node. */
export function nodeFailure(err: Error | undefined): NodeFailure {
  // undici raises parser errors without a code; the reason is in the message's parentheses.
  if (err?.name === 'HTTPParserError') {
    const reason = /\(([^)]{1,120})\)\s*$/.exec(err.message)?.[1] ?? 'unparseable';
    return { code: 'NODE_ANSWER_UNPARSEABLE', detail: reason, status: 502, message: `the node's answer could not be parsed (${reason})`, notConnected: false, staleConnection: false };
  }
  const raw = (err as { code?: unknown } | undefined)?.code;
  const code = typeof raw === 'string' ? raw : 'UNKNOWN';
  if (Object.hasOwn(LOCAL_SHORTAGE, code)) {
    return { code: 'LOCAL_RESOURCES', detail: code, status: 503, message: LOCAL_SHORTAGE[code]!, notConnected: false, staleConnection: false };
  }
  const tls = TLS_CODE.test(code);
  const known = KNOWN.has(code) || tls;
  return {
    code: known ? code : 'NODE_FAILED',
    detail: known ? undefined : code,
    status: code.endsWith('_TIMEOUT') ? 504 : 502,
    message: MESSAGES[code] ?? (tls ? "the node's TLS certificate or handshake was refused" : 'the node failed'),
    notConnected: NOT_CONNECTED.has(code) || tls,
    staleConnection: code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE',
  };
}

/**
 * Whether an error raised before any byte reached the node is a failure to connect (retry
 * elsewhere, count against the node), as opposed to undici refusing the request itself (the
 * client's doing): a system error (`E…`), one of undici's socket errors, or TLS.
 */
export function isConnectionFailure(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return /^E[A-Z0-9]+$/.test(code) || TLS_CODE.test(code) || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_HEADERS_TIMEOUT';
}

declare const label: unique symbol;
/**
 * A node failure as the routing line's `error` shows it (`ECONNREFUSED`, `NODE_ANSWER_UNPARSEABLE:
 * Invalid status code`, a TLS code): made by nodeFailureLabel alone, so no other text passes for one.
 */
export type NodeFailureLabel = string & { readonly [label]: true };

/** How a node failure reads in the routing line's `error`: its code, then its detail when it has one. */
export function nodeFailureLabel(err: Error | undefined): NodeFailureLabel {
  const f = nodeFailure(err);
  return (f.detail === undefined ? f.code : `${f.code}: ${f.detail}`) as NodeFailureLabel;
}
