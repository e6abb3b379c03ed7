import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { it } from 'node:test';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { send } from '../support/http-client.js';
import { startFromFile } from '../support/file-app.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { Skopeo } from '../support/skopeo.js';
import { makeTempDir } from '../support/tmp.js';

const REPO = 'library/reload';
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A blob GET whose body waits until resume(): in flight across the reload. */
function pausedPull(url: string, token: string): Promise<{ resume(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      assert.equal(res.statusCode, 200);
      res.pause();
      const hash = createHash('sha256');
      resolve({
        resume: () =>
          new Promise((ok, fail) => {
            res.on('data', (c: Buffer) => hash.update(c));
            res.on('end', () => ok(`sha256:${hash.digest('hex')}`));
            res.on('error', fail);
            res.resume();
          }),
      });
    });
    req.on('error', reject);
  });
}

it('a reload under load against real registries: a node removed mid-upload finishes it, pulls in flight complete, skopeo keeps working', async (t) => {
  const tmp = makeTempDir('e2e-reload');
  t.after(tmp.remove);
  // A different http.secret on every node: an upload continued anywhere but its own node fails.
  const cluster = await startRealHarborCluster(tmp.dir, 3, [{ httpSecret: 'secret-1' }, { httpSecret: 'secret-2' }, { httpSecret: 'secret-3' }]);
  t.after(() => cluster.close());
  const [u1, u2, u3] = cluster.nodes.map((n) => n.url);
  const file = join(tmp.dir, 'harbor-lb.yaml');
  const yaml = (nodes: Array<[string, string]>) =>
    [
      'listen: {address: 127.0.0.1, port: 0}',
      'admin: {address: 127.0.0.1, port: 0}',
      'nodes:',
      ...nodes.map(([name, url]) => `  - {name: ${name}, url: "${url}"}`),
      'health: {enabled: false}',
      'sticky: {keys: [upload]}',
    ].join('\n');
  writeFileSync(file, yaml([['n1', u1!], ['n2', u2!]]));
  const { app, logs, proxyUrl } = await startFromFile(file);
  t.after(() => app.close(0));
  const host = new URL(proxyUrl).host;
  const skopeo = new Skopeo(tmp.dir);

  // A 24 MiB layer to pull while the reload happens.
  const image = makeOciImage(join(tmp.dir, 'image'), [24 * 1024 * 1024]);
  const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, `docker://${host}/${REPO}:v1`]);
  assert.equal(push.code, 0, push.stderr);

  const auth = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
  const tokenReply = await send(`${proxyUrl}/service/token?service=harbor-registry&scope=repository:${REPO}:pull,push`, { headers: { authorization: auth } });
  assert.equal(tokenReply.status, 200);
  const token = (JSON.parse(tokenReply.body.toString()) as { token: string }).token;
  const bearer = { authorization: `Bearer ${token}` };
  const layer = image.layerDigests[0]!;
  const pulls = await Promise.all([1, 2, 3].map(() => pausedPull(`${proxyUrl}/v2/${REPO}/blobs/${layer}`, token)));

  // An upload begins and sends half its bytes.
  const blob = randomBytes(4 * 1024 * 1024);
  const begun = await send(`${proxyUrl}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: bearer });
  assert.equal(begun.status, 202, begun.body.toString());
  const uploadNode = String(logs.requests().at(-1)!.node);
  const half = blob.length / 2;
  const p1 = await send(String(begun.headers.location), {
    method: 'PATCH',
    headers: { ...bearer, 'content-type': 'application/octet-stream', 'content-range': `0-${half - 1}`, 'content-length': half },
    body: blob.subarray(0, half),
  });
  assert.equal(p1.status, 202, p1.body.toString());

  // The reload removes the upload's node and adds n3.
  const kept: [string, string] = uploadNode === 'n1' ? ['n2', u2!] : ['n1', u1!];
  writeFileSync(file, yaml([kept, ['n3', u3!]]));
  const result = app.reload();
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.nodes, { added: ['n3'], removed: [uploadNode], changed: [] });
  const afterReload = logs.requests().length;

  const p2 = await send(String(p1.headers.location), {
    method: 'PATCH',
    headers: { ...bearer, 'content-type': 'application/octet-stream', 'content-range': `${half}-${blob.length - 1}`, 'content-length': half },
    body: blob.subarray(half),
  });
  assert.equal(p2.status, 202, p2.body.toString());
  const location = new URL(String(p2.headers.location));
  location.searchParams.set('digest', sha256(blob));
  const put = await send(location.toString(), { method: 'PUT', headers: { ...bearer, 'content-length': 0 } });
  assert.equal(put.status, 201, `the upload completes on its (removed) node: ${put.body.toString()}`);
  const uploadLines = logs.requests().slice(afterReload).filter((l) => l.route === 'upload');
  assert.deepEqual(
    uploadLines.map((l) => [l.node, l.reason]),
    [
      [uploadNode, 'pinned'],
      [uploadNode, 'pinned'],
    ],
  );

  for (const p of pulls) assert.equal(await p.resume(), layer, 'a pull in flight across the reload is whole');
  // (Their routing lines are written as they end, naming the node they began on.)
  const settled = logs.requests().length;

  // After the reload: skopeo pulls and pushes; nothing new reaches the removed node.
  const pulled = await skopeo.run(['copy', '--src-tls-verify=false', '--src-creds', 'admin:Harbor12345', `docker://${host}/${REPO}:v1`, `dir:${skopeo.writableDir('pulled')}`]);
  assert.equal(pulled.code, 0, pulled.stderr);
  const next = makeOciImage(join(tmp.dir, 'image2'), [512 * 1024]);
  const push2 = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${next.dir}:v1`, `docker://${host}/${REPO}:v2`]);
  assert.equal(push2.code, 0, push2.stderr);
  const later = logs.requests().slice(settled);
  assert.ok(later.length > 5);
  assert.equal(later.filter((l) => l.node === uploadNode).length, 0, 'the removed node gets no new request');
  assert.ok(later.some((l) => l.node === 'n3'), 'the added node takes traffic');
  assert.ok(later.every((l) => (l.status as number) < 500), JSON.stringify(later.filter((l) => (l.status as number) >= 500)));
});
