import type { ServerResponse } from 'node:http';

/** Registry error codes (distribution's errcode names) that the proxy itself answers with. */
export type RegistryErrorCode = 'UNAVAILABLE' | 'UNSUPPORTED' | 'DENIED' | 'UNAUTHORIZED' | 'TOOMANYREQUESTS';

/** A failure of the proxy's own, with a stable code, the HTTP status it maps to and its cause. */
export class ProxyError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
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
  ]);
  res.end(isHead ? undefined : body);
  return isHead ? 0 : Buffer.byteLength(body);
}

/** What the client is told when a node failed before answering: 502 for refused/reset, 504 for timeouts. */
export function describeNodeFailure(err: Error | undefined): { status: number; code: string; message: string } {
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
