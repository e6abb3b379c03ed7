import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startDockerd, type Dockerd } from '../support/dockerd.js';
import { loadImageArchive } from '../support/image-archive.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The real docker client (Debian docker.io, a dockerd of the test's own) through harbor-lb in
 * front of three real registries: login with the password on stdin, push, rmi, pull, logout.
 * Registries on 127.0.0.0/8 are insecure to dockerd: plain HTTP works without configuration.
 */
describe('docker login / push / pull through harbor-lb', () => {
  const tmp = makeTempDir('docker');
  let dockerd: Dockerd | undefined;
  let skip: string | undefined;

  before(async () => {
    chmodSync(tmp.dir, 0o755);
    const started = await startDockerd(tmp.dir);
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    dockerd = started;
    // No registry to pull a base image from: the test makes an image and loads it.
    await loadImageArchive((args) => dockerd!.docker(args), tmp.dir, 'demo', [512 * 1024, 64 * 1024], 'library/demo:v1');
  });
  after(async () => {
    await dockerd?.stop();
    tmp.remove();
  });

  async function rounds(lb: StartedApp, n: number): Promise<string[]> {
    const d = dockerd!;
    const host = new URL(lb.url).host;
    const failures: string[] = [];
    const step = async (what: string, args: string[], stdin?: string) => {
      const r = await d.docker(args, stdin);
      if (r.code !== 0) failures.push(`${what}: ${r.stderr.trim()}`);
      return r;
    };
    for (let i = 0; i < n; i++) {
      const ref = `${host}/library/demo:r${i}`;
      await step(`login ${i}`, ['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345');
      await step(`tag ${i}`, ['tag', 'library/demo:v1', ref]);
      await step(`push ${i}`, ['push', ref]);
      // Both names gone, the image is deleted: the pull has to fetch every layer.
      await step(`rmi ${i}`, ['rmi', ref, 'library/demo:v1']);
      await step(`pull ${i}`, ['pull', ref]);
      await step(`tag back ${i}`, ['tag', ref, 'library/demo:v1']);
      await step(`rmi after pull ${i}`, ['rmi', ref]);
      await step(`logout ${i}`, ['logout', host]);
    }
    return failures;
  }

  it('three rounds against a healthy cluster all succeed', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const cluster = await startRealHarborCluster(tmp.dir + '/healthy', 3);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, token: { rootCert: cluster.keys.certFile, probe: { interval: '1s' } } });
    t.after(() => lb.close());
    assert.deepEqual(await rounds(lb, 3), []);
    const lines = lb.logs.requests();
    const manifestsPut = lines.filter((l) => l.method === 'PUT' && /\/manifests\/r\d$/.test(String(l.path))).length;
    const blobsGot = lines.filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(String(l.path)) && l.status === 200).length;
    t.diagnostic(`${lines.length} requests through harbor-lb; ${manifestsPut} manifest PUTs, ${blobsGot} blob GETs`);
    assert.equal(manifestsPut, 3, 'each round pushed its tag through harbor-lb');
    // Two layers and the config, each round.
    assert.ok(blobsGot >= 9, 'each round pulled every blob back through harbor-lb');
  });

  it('four pushes of different images at once, then four pulls at once, all succeed (several users of one registry)', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const d = dockerd!;
    const cluster = await startRealHarborCluster(tmp.dir + '/parallel', 3);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, token: { rootCert: cluster.keys.certFile, probe: { interval: '1s' } } });
    t.after(() => lb.close());
    const host = new URL(lb.url).host;
    const names = [0, 1, 2, 3].map((i) => `library/app${i}`);
    // Four images with layers of their own (sizes differ, so their digests do).
    for (const [i, name] of names.entries()) {
      await loadImageArchive((args) => d.docker(args), tmp.dir, `app${i}`, [256 * 1024 + i * 4096, 32 * 1024 + i], `${host}/${name}:v1`);
    }
    assert.equal((await d.docker(['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345')).code, 0);
    const pushed = await Promise.all(names.map((n) => d.docker(['push', `${host}/${n}:v1`])));
    assert.deepEqual(pushed.map((r) => (r.code === 0 ? 'ok' : r.stderr.trim())), ['ok', 'ok', 'ok', 'ok']);
    assert.equal((await d.docker(['rmi', ...names.map((n) => `${host}/${n}:v1`)])).code, 0);
    const pulled = await Promise.all(names.map((n) => d.docker(['pull', `${host}/${n}:v1`])));
    assert.deepEqual(pulled.map((r) => (r.code === 0 ? 'ok' : r.stderr.trim())), ['ok', 'ok', 'ok', 'ok']);
    await d.docker(['rmi', ...names.map((n) => `${host}/${n}:v1`)]);
    await d.docker(['logout', host]);
  });

  it('with one node on a foreign key pair (the seed failure): every round succeeds, the node is flagged', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const cluster = await startRealHarborCluster(tmp.dir + '/foreign', 3, [{}, { fault: 'foreign-key' }, {}]);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, token: { rootCert: cluster.keys.certFile, probe: { interval: '1s' } } });
    t.after(() => lb.close());
    assert.deepEqual(await rounds(lb, 3), []);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.node === 'n2' && l.code !== 'REALM_BYPASSES_PROXY');
    assert.match(String(flag.code), /TOKEN_SIGNED_WITH_FOREIGN_KEY|REGISTRY_REJECTS_CLUSTER_TOKEN/);
  });
});
