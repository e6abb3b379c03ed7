import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';
import { hashedRequest, pushBlob, registryToken } from '../support/registry-requests.js';

const REPO = 'library/rollout';
const request = (base: string, path: string, opts: Parameters<typeof hashedRequest>[1] = {}) => hashedRequest(`${base}${path}`, opts);
const token = (lb: StartedApp, scope: string) => registryToken(lb.url, scope);

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
    const digest = await pushBlob(lb.url, REPO, auth, layer);
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

    for (const p of pulls) assert.deepEqual([p.status, p.bytes, `sha256:${p.sha256}`], [200, layer.length, digest]);
    assert.equal(anonymous!.status, direct[0]!.status);
    assert.equal(elsewhere!.status, direct[1]!.status);
    for (const r of [anonymous!, elsewhere!]) assert.ok(r.bytes < 4096 && `sha256:${r.sha256}` !== digest, 'no blob bytes');

    const lines = (await lb.logs.waitForRequests(before + 22)).slice(before).filter((l) => l.path === path && l.status === 200);
    const nodeReads = lines.filter((l) => l.reason !== 'coalesced').length;
    t.diagnostic(`20 pulls of a 32 MiB layer: ${nodeReads} read(s) from the nodes, ${lines.length - nodeReads} coalesced`);
    assert.equal(lines.length, 20);
    assert.ok(nodeReads <= 2, `${nodeReads} node reads`);
  });

  it('the blob cache against real registries: a kept layer is served whole and by Range as the registry serves it, after the registry said yes to each client', { timeout: 180_000 }, async (t) => {
    const tmp = makeTempDir('e2e-cache');
    t.after(tmp.remove);
    const cluster = await startRealHarborCluster(tmp.dir, 2);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, cache: { dir: `${tmp.dir}/cache` }, token: { rootCert: cluster.keys.certFile, probe: { enabled: false } } });
    t.after(() => lb.close());
    const auth = `Bearer ${await token(lb, `repository:${REPO}:pull,push`)}`;
    const layer = randomBytes(8 * 1024 * 1024 + 5);
    const digest = await pushBlob(lb.url, REPO, auth, layer);
    const path = `/v2/${REPO}/blobs/${digest}`;
    const withAuth = { headers: { authorization: auth } };
    const ranged = { headers: { authorization: auth, range: 'bytes=1048576-2097151' } };
    const first = await request(lb.url, path, withAuth);
    assert.equal(`sha256:${first.sha256}`, digest);
    // /-/status asks every worker first: the other worker has heard that the layer was kept (and matched).
    assert.equal(((await request(lb.adminUrl, '/-/status')).text.includes('"blobs":1')), true);
    const [whole, part] = [await request(lb.url, path, withAuth), await request(lb.url, path, ranged)];
    const [directWhole, directPart] = [await request(cluster.nodes[0]!.url, path, withAuth), await request(cluster.nodes[0]!.url, path, ranged)];
    const [anonymous, directAnonymous] = [await request(lb.url, path), await request(cluster.nodes[0]!.url, path)];
    // Two workers write their routing lines each on its own: counted, not ordered.
    const gets = () => lb.logs.requests().filter((l) => l.path === path && l.method === 'GET');
    while (gets().length < 4) await lb.logs.waitForRequests(lb.logs.requests().length + 1);
    const lines = gets();
    assert.deepEqual(lines.map((l) => `${l.status} ${l.reason}`).sort(), ['200 balanced', '200 cache', '206 cache', `${directAnonymous.status} balanced`].sort());
    // What a client sees is what the registry itself sends.
    const head = (a: typeof whole) => ({ status: a.status, bytes: a.bytes, sha256: a.sha256, type: a.headers['content-type'], length: a.headers['content-length'], digest: a.headers['docker-content-digest'], range: a.headers['content-range'] });
    assert.deepEqual(head(whole), head(directWhole));
    assert.deepEqual(head(part), head(directPart));
    assert.equal(part.status, 206);
    assert.deepEqual([anonymous.status, anonymous.bytes < 4096], [directAnonymous.status, true]);
  });
});
