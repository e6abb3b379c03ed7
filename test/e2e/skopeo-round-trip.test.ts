import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeOciImage, type OciImage } from '../../src/demo/oci-image.js';
import { makeServerCert } from '../support/pki.js';
import { startApp, type StartedApp } from '../support/app.js';
import { startRealHarborCluster, type RealHarborCluster } from '../support/real-cluster.js';
import { Skopeo } from '../support/skopeo.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The "done when": a real skopeo login / push / inspect / pull through harbor-lb, against
 * three real registries sharing one storage, over HTTP and over HTTPS.
 */
for (const scheme of ['http', 'https'] as const) {
  describe(`skopeo round trip through harbor-lb over ${scheme}`, () => {
    let tmp: ReturnType<typeof makeTempDir>;
    let cluster: RealHarborCluster;
    let lb: StartedApp;
    let skopeo: Skopeo;
    let image: OciImage;
    let host: string;

    before(async () => {
      tmp = makeTempDir(`e2e-${scheme}`);
      cluster = await startRealHarborCluster(tmp.dir, 3);
      const tls = scheme === 'https' ? makeServerCert(tmp.dir) : undefined;
      // Round robin, so "requests spread over all three nodes" holds on every run (p2c is random).
      lb = await startApp(
        cluster.nodes.map((n) => n.url),
        { proxy: { workers: 2 }, balance: { policy: 'round-robin' }, ...(tls ? { listen: { tls: { cert: tls.certFile, key: tls.keyFile } } } : {}) },
      );
      host = new URL(lb.url).host;
      // publicUrl defaults to the listener; realms must point there, not at the nodes.
      skopeo = new Skopeo(tmp.dir);
      image = makeOciImage(join(tmp.dir, 'image'), [3 * 1024 * 1024, 2 * 1024 * 1024, 512 * 1024]);
    });

    after(async () => {
      await lb?.close();
      await cluster?.close();
      tmp?.remove();
    });

    it('logs in, pushes, inspects and pulls back the same bytes, spread over the nodes', async () => {
      const login = await skopeo.run(['login', '--tls-verify=false', '-u', 'admin', '-p', 'Harbor12345', host]);
      assert.equal(login.code, 0, login.stderr);

      const ref = `docker://${host}/library/e2e-${scheme}:v1`;
      const push = await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${image.dir}:v1`, ref]);
      assert.equal(push.code, 0, push.stderr);

      const inspect = await skopeo.run(['inspect', '--tls-verify=false', '--raw', ref]);
      assert.equal(inspect.code, 0, inspect.stderr);
      const manifest = JSON.parse(inspect.stdout) as { layers: Array<{ digest: string }> };
      assert.deepEqual(
        manifest.layers.map((l) => l.digest),
        image.layerDigests,
      );

      const out = skopeo.writableDir('pulled');
      const pull = await skopeo.run(['copy', '--src-tls-verify=false', ref, `dir:${out}`]);
      assert.equal(pull.code, 0, pull.stderr);
      for (const digest of image.layerDigests) {
        const hex = digest.slice('sha256:'.length);
        const original = readFileSync(join(image.dir, 'blobs', 'sha256', hex));
        const pulled = readFileSync(join(out, hex));
        assert.ok(original.equals(pulled), `layer ${digest} came back different`);
      }

      const lines = lb.logs.requests();
      assert.ok(lines.length > 10, `expected routing lines, got ${lines.length}`);
      const nodesUsed = new Set(lines.map((l) => l.node));
      assert.equal(nodesUsed.size, 3, `requests should spread over all three nodes, went to ${[...nodesUsed].join(',')}`);
      for (const l of lines) {
        for (const field of ['reqId', 'client', 'method', 'path', 'route', 'node', 'reason', 'affinity', 'status', 'durationMs', 'attempts', 'bytesIn', 'bytesOut']) {
          assert.ok(field in l, `routing line lacks ${field}: ${JSON.stringify(l)}`);
        }
      }
      assert.ok(lines.some((l) => l.route === 'token' && l.status === 200));
      assert.ok(lines.some((l) => l.route === 'upload' && l.method === 'PUT' && l.status === 201));
      assert.ok(lines.some((l) => (l.client as { user?: string }).user === 'admin'), 'the user name is logged');
      const text = lb.logs.text();
      assert.ok(!text.includes('Harbor12345'), 'the password never reaches the log');
      assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/.test(text), 'no token reaches the log');
      assert.ok(!/authorization/i.test(text), 'no Authorization header reaches the log');
    });
  });
}
