import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const REPO = 'library/rollout';
const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

interface Answer {
  status: number;
  bytes: number;
  sha256: string;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function request(base: string, path: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let text = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
        if (bytes <= 64 * 1024) text += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: `sha256:${hash.digest('hex')}`, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function token(lb: StartedApp, scope: string): Promise<string> {
  const q = new URLSearchParams({ service: 'harbor-registry', scope });
  const r = await request(lb.url, `/service/token?${q.toString()}`, { headers: { authorization: BASIC } });
  assert.equal(r.status, 200);
  return (JSON.parse(r.text) as { token: string }).token;
}

async function pushBlob(lb: StartedApp, auth: string, blob: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const started = await request(lb.url, `/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization: auth } });
  assert.equal(started.status, 202);
  const loc = new URL(String(started.headers.location));
  loc.searchParams.set('digest', digest);
  const put = await request(lb.url, `${loc.pathname}${loc.search}`, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/octet-stream', 'content-length': blob.length }, body: blob });
  assert.equal(put.status, 201);
  return digest;
}

describe('coalescing against real registries (coalesce.enabled)', () => {
  it('a herd of 20 pulls of one layer reads it from the nodes a few times at most; clients the registry refuses get its own answer and no bytes', { timeout: 180_000 }, async (t) => {
    const tmp = makeTempDir('e2e-coalesce');
    t.after(tmp.remove);
    const cluster = await startRealHarborCluster(tmp.dir, 2);
    t.after(() => cluster.close());
    // Two request workers: the herd spreads over both, and the layer is still read once per host.
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, coalesce: { enabled: true }, token: { rootCert: cluster.keys.certFile, probe: { enabled: false } } });
    t.after(() => lb.close());
    const auth = `Bearer ${await token(lb, `repository:${REPO}:pull,push`)}`;
    const layer = randomBytes(32 * 1024 * 1024);
    const digest = await pushBlob(lb, auth, layer);
    const path = `/v2/${REPO}/blobs/${digest}`;
    const otherRepo = `Bearer ${await token(lb, 'repository:library/elsewhere:pull')}`;
    // What the registry itself answers those clients, asked directly.
    const direct = await Promise.all([request(cluster.nodes[0]!.url, path), request(cluster.nodes[0]!.url, path, { headers: { authorization: otherRepo } })]);
    assert.ok(direct.every((d) => d.status === 401 || d.status === 404), `the registry refuses them: ${direct.map((d) => d.status).join(', ')}`);
    const before = lb.logs.requests().length;

    const herd = Array.from({ length: 20 }, () => request(lb.url, path, { headers: { authorization: auth } }));
    const refused = [request(lb.url, path), request(lb.url, path, { headers: { authorization: otherRepo } })];
    const pulls = await Promise.all(herd);
    const [anonymous, elsewhere] = await Promise.all(refused);

    for (const p of pulls) assert.deepEqual([p.status, p.bytes, p.sha256], [200, layer.length, digest]);
    assert.equal(anonymous!.status, direct[0]!.status);
    assert.equal(elsewhere!.status, direct[1]!.status);
    for (const r of [anonymous!, elsewhere!]) assert.ok(r.bytes < 4096 && r.sha256 !== digest, 'no blob bytes');

    const lines = (await lb.logs.waitForRequests(before + 22)).slice(before).filter((l) => l.path === path && l.status === 200);
    const nodeReads = lines.filter((l) => l.reason !== 'coalesced').length;
    t.diagnostic(`20 pulls of a 32 MiB layer: ${nodeReads} read(s) from the nodes, ${lines.length - nodeReads} coalesced`);
    assert.equal(lines.length, 20);
    assert.ok(nodeReads <= 2, `${nodeReads} node reads`);
  });
});
