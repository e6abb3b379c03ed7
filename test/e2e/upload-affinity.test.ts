import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { Skopeo } from '../support/skopeo.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

it("pushes succeed through harbor-lb although one registry's http.secret differs (uploads stay on their node)", async (t) => {
  const { dir, lb } = await realClusterBehindLb(t, 'e2e-secret', 3, { proxy: { workers: 2 }, balance: { policy: 'round-robin' } }, [{}, { httpSecret: 'a-different-secret' }, {}]);
  const host = new URL(lb.url).host;
  const skopeo = new Skopeo(dir);
  for (let i = 0; i < 5; i++) {
    // New layers each time: skopeo skips blobs the registry already has.
    const image = makeOciImage(join(dir, `image-${i}`), [512 * 1024, 256 * 1024]);
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, `docker://${host}/library/secret:r${i}`]);
    assert.equal(push.code, 0, push.stderr);
  }
  const followUps = lb.logs.requests().filter((l) => l.route === 'upload' && l.method !== 'POST');
  assert.ok(followUps.length >= 10);
  for (const l of followUps) assert.deepEqual([l.affinity, l.reason], ['upload', 'pinned'], JSON.stringify(l));
  assert.ok(lb.logs.requests().some((l) => l.route === 'upload' && l.node === 'n2'), 'n2 took uploads too');
});
