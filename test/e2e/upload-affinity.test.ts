import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { Skopeo } from '../support/skopeo.js';
import { makeTempDir } from '../support/tmp.js';

it("pushes succeed through harbor-lb although one registry's http.secret differs (uploads stay on their node)", async (t) => {
  const tmp = makeTempDir('e2e-secret');
  t.after(tmp.remove);
  const cluster = await startRealHarborCluster(tmp.dir, 3, [{}, { httpSecret: 'a-different-secret' }, {}]);
  t.after(() => cluster.close());
  const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, balance: { policy: 'round-robin' } });
  t.after(() => lb.close());
  const host = new URL(lb.url).host;
  const skopeo = new Skopeo(tmp.dir);
  for (let i = 0; i < 5; i++) {
    // New layers each time: skopeo skips blobs the registry already has.
    const image = makeOciImage(join(tmp.dir, `image-${i}`), [512 * 1024, 256 * 1024]);
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, `docker://${host}/library/secret:r${i}`]);
    assert.equal(push.code, 0, push.stderr);
  }
  const followUps = lb.logs.requests().filter((l) => l.route === 'upload' && l.method !== 'POST');
  assert.ok(followUps.length >= 10);
  for (const l of followUps) assert.deepEqual([l.affinity, l.reason], ['upload', 'pinned'], JSON.stringify(l));
  assert.ok(lb.logs.requests().some((l) => l.route === 'upload' && l.node === 'n2'), 'n2 took uploads too');
});
