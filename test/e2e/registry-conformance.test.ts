import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { startRealRegistry } from '../support/registry.js';
import { makeTempDir } from '../support/tmp.js';

interface Observation {
  step: string;
  status: number;
  code?: string;
  headers: Record<string, string | undefined>;
  /** For steps that return content: whether it is exactly what was stored. */
  bodyMatches?: boolean;
}

/**
 * A registry client's flow, step by step, recording what a client relies on: status, error code,
 * and the headers that drive the next step (normalised where values are per-run).
 */
async function clientFlow(node: string, other: string, tokenFor: (scope: string) => Promise<string>, foreignToken: string): Promise<Observation[]> {
  const out: Observation[] = [];
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const note = (step: string, r: Awaited<ReturnType<typeof send>>, pick: string[] = []) => {
    let code: string | undefined;
    try {
      code = (JSON.parse(r.body.toString()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
    } catch {
      /* not JSON */
    }
    const headers: Record<string, string | undefined> = {};
    for (const h of pick) headers[h] = r.headers[h] as string | undefined;
    out.push({ step, status: r.status, code, headers });
  };
  const repo = 'library/conformance';
  const token = await tokenFor(`repository:${repo}:pull,push`);
  const auth = { authorization: `Bearer ${token}` };

  const anon = await send(`${node}/v2/`);
  note('base without token', anon);
  assert.match(String(anon.headers['www-authenticate']), /^Bearer realm="[^"]+\/service\/token",service="harbor-registry"$/);

  const foreign = await send(`${node}/v2/`, { headers: { authorization: `Bearer ${foreignToken}` } });
  note('token signed by an untrusted key', foreign);
  assert.match(String(foreign.headers['www-authenticate']), /error="invalid_token"/);
  const foreignHead = await send(`${node}/v2/${repo}/manifests/x`, { method: 'HEAD', headers: { authorization: `Bearer ${foreignToken}` } });
  note('HEAD with an untrusted token', foreignHead);
  assert.equal(foreignHead.body.length, 0);

  note('base with token', await send(`${node}/v2/`, { headers: auth }));

  // The same bytes in both flows, so digests compare.
  const layer = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
  const started = await send(`${node}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
  note('start upload', started, ['range']);
  const loc = new URL(String(started.headers.location));
  assert.ok(started.headers['docker-upload-uuid']);
  const patched = await send(`${node}${loc.pathname}${loc.search}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: layer.subarray(0, 100_000) });
  note('PATCH first chunk', patched, ['range']);
  const loc2 = new URL(String(patched.headers.location));
  const wrongNode = await send(`${other}${loc2.pathname}${loc2.search}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: layer.subarray(100_000, 100_010) });
  note('PATCH on a node with another http.secret', wrongNode);
  const patched2 = await send(`${node}${loc2.pathname}${loc2.search}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: layer.subarray(100_000) });
  note('PATCH rest', patched2, ['range']);
  const loc3 = new URL(String(patched2.headers.location));
  const badDigest = `sha256:${'0'.repeat(64)}`;
  const put = await send(`${node}${loc3.pathname}${loc3.search}&digest=${sha(layer)}`, { method: 'PUT', headers: auth });
  note('PUT with digest', put, ['docker-content-digest']);

  const monoConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const single = await send(`${node}/v2/${repo}/blobs/uploads/?digest=${sha(monoConfig)}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: monoConfig });
  note('POST with digest and body (not a single-request upload in distribution)', single, ['range']);
  const monoLoc = new URL(String(single.headers.location));
  const mono = await send(`${node}${monoLoc.pathname}${monoLoc.search}&digest=${sha(monoConfig)}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: monoConfig });
  note('monolithic PUT', mono, ['docker-content-digest']);
  const wrongDigest = await send(`${node}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
  const wl = new URL(String(wrongDigest.headers.location));
  note('PUT with a digest that does not match', await send(`${node}${wl.pathname}${wl.search}&digest=${badDigest}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: monoConfig }));

  note('HEAD blob', await send(`${node}/v2/${repo}/blobs/${sha(layer)}`, { method: 'HEAD', headers: auth }), ['content-length', 'docker-content-digest']);
  const ranged = await send(`${node}/v2/${repo}/blobs/${sha(layer)}`, { headers: { ...auth, range: 'bytes=10-19' } });
  note('GET blob range', ranged, ['content-range']);
  out[out.length - 1]!.bodyMatches = ranged.body.equals(layer.subarray(10, 20));
  note('HEAD unknown blob', await send(`${node}/v2/${repo}/blobs/${badDigest}`, { method: 'HEAD', headers: auth }));

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(monoConfig), size: monoConfig.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
    }),
  );
  const mt = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
  note('PUT manifest by tag', await send(`${node}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { ...auth, ...mt }, body: manifest }), ['docker-content-digest']);
  const dangling = Buffer.from(manifest.toString().replace(sha(layer), badDigest));
  note('PUT manifest naming an unknown blob', await send(`${node}/v2/${repo}/manifests/v2`, { method: 'PUT', headers: { ...auth, ...mt }, body: dangling }));
  note('PUT manifest under a wrong digest', await send(`${node}/v2/${repo}/manifests/${badDigest}`, { method: 'PUT', headers: { ...auth, ...mt }, body: manifest }));
  const byTag = await send(`${node}/v2/${repo}/manifests/v1`, { headers: { ...auth, accept: mt['content-type'] } });
  note('GET manifest by tag', byTag, ['content-type', 'docker-content-digest']);
  out[out.length - 1]!.bodyMatches = byTag.body.equals(manifest);
  note('HEAD manifest by digest', await send(`${node}/v2/${repo}/manifests/${sha(manifest)}`, { method: 'HEAD', headers: { ...auth, accept: mt['content-type'] } }), ['content-length', 'docker-content-digest']);
  note('GET unknown manifest', await send(`${node}/v2/${repo}/manifests/nope`, { headers: auth }));
  const tags = await send(`${node}/v2/${repo}/tags/list`, { headers: auth });
  note('tags list', tags);
  out[out.length - 1]!.bodyMatches = tags.body.toString().replace(/\s/g, '') === JSON.stringify({ name: repo, tags: ['v1'] });

  const pullOnly = await tokenFor(`repository:${repo}:pull`);
  note('push with a pull-only token', await send(`${node}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${pullOnly}` } }));
  return out;
}

it('the simulated registry answers the client flow exactly as the real registry does', async (t) => {
  const tmp = makeTempDir('conformance');
  t.after(tmp.remove);
  const keys = makeTokenKeyPair(tmp.dir, 'cluster');
  const foreignKeys = makeTokenKeyPair(tmp.dir, 'foreign');
  const basic = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
  const tokenFrom = (node: SimulatedHarborNode) => async (scope: string) => {
    const q = new URLSearchParams({ service: 'harbor-registry', scope });
    const r = await send(`${node.url}/service/token?${q.toString()}`, { headers: { authorization: basic } });
    return (JSON.parse(r.body.toString()) as { token: string }).token;
  };
  const foreignIssuer = await new SimulatedHarborNode({ name: 'foreign', signingKey: foreignKeys.key }).start();
  t.after(() => foreignIssuer.close());
  const foreignToken = await tokenFrom(foreignIssuer)('repository:library/conformance:pull');

  // Real: two docker-registry processes on one storage, different http.secret.
  const realStorage = join(tmp.dir, 'real-storage');
  mkdirSync(realStorage);
  const registries = await Promise.all(
    ['a', 'b'].map((name, i) => startRealRegistry({ dir: tmp.dir, name, storage: realStorage, rootCertBundle: keys.certFile, realm: 'http://hub/service/token', httpSecret: `secret-${i}` })),
  );
  t.after(() => Promise.all(registries.map((r) => r.stop())));
  const real = await Promise.all(registries.map((r, i) => new SimulatedHarborNode({ name: `real${i}`, signingKey: keys.key, registryUrl: r.url }).start()));
  t.after(() => Promise.all(real.map((n) => n.close())));

  // Simulated: two embedded registries on one storage, different http.secret.
  const simStorage = join(tmp.dir, 'sim-storage');
  const sim = await Promise.all(
    [0, 1].map((i) => new SimulatedHarborNode({ name: `sim${i}`, signingKey: keys.key, storage: simStorage, httpSecret: `secret-${i}`, realm: 'http://hub/service/token' }).start()),
  );
  t.after(() => Promise.all(sim.map((n) => n.close())));

  const realFlow = await clientFlow(real[0]!.url, real[1]!.url, tokenFrom(real[0]!), foreignToken);
  const simFlow = await clientFlow(sim[0]!.url, sim[1]!.url, tokenFrom(sim[0]!), foreignToken);
  for (let i = 0; i < realFlow.length; i++) assert.deepEqual(simFlow[i], realFlow[i], `step "${realFlow[i]!.step}" differs`);
  assert.equal(simFlow.length, realFlow.length);
  for (const o of realFlow) if (o.bodyMatches !== undefined) assert.equal(o.bodyMatches, true, o.step);
  const wrong = realFlow.find((o) => o.step === 'PATCH on a node with another http.secret')!;
  assert.deepEqual([wrong.status, wrong.code], [404, 'BLOB_UPLOAD_INVALID']);
});
