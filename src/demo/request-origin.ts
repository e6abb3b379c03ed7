import type { IncomingMessage } from 'node:http';

/** scheme://host a client used, as distribution builds absolute URLs: X-Forwarded-Proto/Host first, else Host. */
export function requestOrigin(req: IncomingMessage): string {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.split(',')[0]!.trim();
  const proto = first(req.headers['x-forwarded-proto']) ?? 'http';
  const host = first(req.headers['x-forwarded-host']) ?? req.headers.host ?? 'localhost';
  return `${proto}://${host}`;
}
