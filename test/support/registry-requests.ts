import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';

/** Harbor's default admin, as the real and simulated clusters set it up. */
export const ADMIN_BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

export interface HashedAnswer {
  status: number;
  /** The body's length and SHA-256 (hex), and its text when small. */
  bytes: number;
  sha256: string;
  text: string;
  headers: http.IncomingHttpHeaders;
  /** From sending to the end of the body. */
  ms: number;
}

/** One request with node:http, from `localAddress` when given, over `agent` (a connection of its own by default); the body hashed, never held. */
export function hashedRequest(
  url: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer; agent?: http.Agent | false; localAddress?: string } = {},
): Promise<HashedAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, localAddress: opts.localAddress }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let text = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        if (bytes <= 64 * 1024) text += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: hash.digest('hex'), text, headers: res.headers, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** docker login: a token for `scope` from the token service behind `base`, as the admin. */
export async function registryToken(base: string, scope: string, localAddress?: string): Promise<string> {
  const q = new URLSearchParams({ service: 'harbor-registry', scope });
  const r = await hashedRequest(`${base}/service/token?${q.toString()}`, { headers: { authorization: ADMIN_BASIC }, localAddress });
  assert.equal(r.status, 200);
  return (JSON.parse(r.text) as { token: string }).token;
}

/** Pushes one blob to `repo` with the registry API (POST, then PUT with its digest); returns the digest. */
export async function pushBlob(base: string, repo: string, auth: string, blob: Buffer, localAddress?: string): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const started = await hashedRequest(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: auth }, localAddress });
  assert.equal(started.status, 202);
  const loc = new URL(String(started.headers.location));
  loc.searchParams.set('digest', digest);
  const put = await hashedRequest(`${base}${loc.pathname}${loc.search}`, {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/octet-stream', 'content-length': blob.length },
    body: blob,
    localAddress,
  });
  assert.equal(put.status, 201);
  return digest;
}
