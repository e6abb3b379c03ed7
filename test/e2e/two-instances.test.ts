import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { startRedis } from '../support/redis.js';
import { Skopeo } from '../support/skopeo.js';
import { startTcpRoundRobin } from '../support/tcp-round-robin.js';
import { makeTempDir } from '../support/tmp.js';

it('skopeo pushes through two harbor-lb instances sharing one Redis, one registry with another http.secret', async (t) => {
  const tmp = makeTempDir('e2e-two');
  t.after(tmp.remove);
  const redis = await startRedis();
  t.after(() => redis.proc.stop());
  const cluster = await startRealHarborCluster(tmp.dir, 3, [{}, { httpSecret: 'another-secret' }, {}]);
  t.after(() => cluster.close());
  const front = await startTcpRoundRobin();
  t.after(() => front.close());
  const host = `127.0.0.1:${front.port}`;
  const sticky = { store: 'redis' as const, redis: { url: redis.url, keyPrefix: 'e2e:' }, keys: ['upload' as const, 'session' as const, 'client' as const] };
  const instances = [];
  for (let i = 0; i < 2; i++) {
    // Both instances send clients back through the front balancer.
    const app = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, sticky, publicUrl: `http://${host}` });
    t.after(() => app.close());
    await app.logs.waitFor((l) => l.event === 'redis_connected');
    instances.push(app);
    front.targets.push(Number(new URL(app.url).port));
  }
  const skopeo = new Skopeo(tmp.dir);
  for (let i = 0; i < 4; i++) {
    const image = makeOciImage(join(tmp.dir, `image-${i}`), [400 * 1024, 200 * 1024]);
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, `docker://${host}/library/two:r${i}`]);
    assert.equal(push.code, 0, push.stderr);
  }
  t.diagnostic(`connections per instance: ${front.connections.join(', ')}`);
  assert.ok(front.connections.every((c) => c > 4), 'both instances served the pushes');
  const uploads = instances.flatMap((a) => a.logs.requests().filter((l) => l.route === 'upload' && l.method !== 'POST'));
  assert.ok(uploads.length > 0);
  for (const l of uploads) assert.equal(l.reason, 'pinned', JSON.stringify(l));
});
