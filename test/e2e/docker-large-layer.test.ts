import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startDockerd, type Dockerd } from '../support/dockerd.js';
import { send } from '../support/http-client.js';
import { randomLayerTar } from '../support/random-layer.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const GiB = 1024 * 1024 * 1024;

/**
 * A layer blob of more than 1 GiB pushed and pulled by the real docker client through harbor-lb
 * (issue 13): no body limit, no total timeout, streaming both ways. The layer is random, so the
 * gzip blob docker pushes is larger than the GiB of content.
 */
describe('docker push / pull of a layer over 1 GiB through harbor-lb', () => {
  const tmp = makeTempDir('docker-large');
  let dockerd: Dockerd | undefined;
  let skip: string | undefined;

  before(async () => {
    chmodSync(tmp.dir, 0o755);
    const started = await startDockerd(tmp.dir);
    if ('skip' in started) skip = started.skip;
    else dockerd = started;
  });
  after(async () => {
    await dockerd?.stop();
    tmp.remove();
  });

  it('push succeeds, the pull after rmi brings back the same layer, the registry stored the whole blob', { timeout: 600_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const d = dockerd!;
    const cluster = await startRealHarborCluster(join(tmp.dir, 'cluster'), 3);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, token: { rootCert: cluster.keys.certFile } });
    t.after(() => lb.close());
    const host = new URL(lb.url).host;
    const ref = `${host}/library/big:v1`;
    const clock = Date.now();
    const lap = (what: string) => t.diagnostic(`${what}: ${((Date.now() - clock) / 1000).toFixed(1)} s`);

    // One layer of 1 GiB of random bytes, made while docker reads it: no file, no base image.
    const layer = randomLayerTar(GiB);
    const imported = await d.docker(['import', '-', ref], layer.stream, 600_000);
    assert.equal(imported.code, 0, imported.stderr);
    const diffId = await layer.diffId;
    const layersOf = async () => {
      const r = await d.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as string[];
    };
    assert.deepEqual(await layersOf(), [diffId], 'docker holds the layer the test made');
    lap('import');

    assert.equal((await d.docker(['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345')).code, 0);
    const pushed = await d.docker(['push', ref], undefined, 600_000);
    assert.equal(pushed.code, 0, pushed.stderr);
    lap('push');

    // The manifest as harbor-lb serves it names the blob docker pushed.
    const tokenReply = await send(`${lb.url}/service/token?service=harbor-registry&scope=${encodeURIComponent('repository:library/big:pull')}`, {
      headers: { authorization: `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}` },
    });
    assert.equal(tokenReply.status, 200);
    const token = (JSON.parse(tokenReply.body.toString()) as { token: string }).token;
    const manifestReply = await send(`${lb.url}/v2/library/big/manifests/v1`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(manifestReply.status, 200, manifestReply.body.toString());
    const manifest = JSON.parse(manifestReply.body.toString()) as { layers: Array<{ digest: string; size: number }> };
    assert.equal(manifest.layers.length, 1);
    const blob = manifest.layers[0]!;
    t.diagnostic(`layer blob ${blob.digest}: ${blob.size} bytes`);
    assert.ok(blob.size >= GiB, `the pushed layer blob is at least 1 GiB (${blob.size})`);
    const hex = blob.digest.replace(/^sha256:/, '');
    const stored = statSync(join(cluster.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'));
    assert.equal(stored.size, blob.size, 'the shared storage holds the whole blob');
    // The blob's bytes crossed harbor-lb on the way in.
    const uploaded = lb.logs.requests().filter((l) => /\/blobs\/uploads\//.test(String(l.path)) && (l.method === 'PATCH' || l.method === 'PUT'));
    const bytesIn = uploaded.reduce((sum, l) => sum + Number(l.bytesIn ?? 0), 0);
    assert.ok(bytesIn >= blob.size, `harbor-lb carried the upload (${bytesIn} bytes in)`);

    // Its only name gone, the image is deleted: the pull fetches the blob back.
    assert.equal((await d.docker(['rmi', ref])).code, 0);
    assert.notEqual((await d.docker(['image', 'inspect', ref])).code, 0, 'the image is gone before the pull');
    const pulled = await d.docker(['pull', ref], undefined, 600_000);
    assert.equal(pulled.code, 0, pulled.stderr);
    lap('pull');
    assert.deepEqual(await layersOf(), [diffId], 'the pulled layer is the one pushed');
    const served = lb.logs.requests().find((l) => l.method === 'GET' && String(l.path).endsWith(`/blobs/${blob.digest}`) && l.status === 200);
    assert.ok(served, 'the blob came back through harbor-lb');
    assert.equal(Number(served.bytesOut), blob.size, 'harbor-lb sent the whole blob');
    await d.docker(['rmi', ref]);
    await d.docker(['logout', host]);
  });
});
