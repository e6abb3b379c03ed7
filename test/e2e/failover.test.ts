import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { makeOciImage, type OciImage } from '../../src/demo/oci-image.js';
import { startRealHarborCluster, type RealHarborCluster } from '../support/real-cluster.js';
import { Skopeo } from '../support/skopeo.js';
import { makeTempDir } from '../support/tmp.js';

describe('real registries: one killed mid-run', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let cluster: RealHarborCluster;
  let lb: StartedApp;
  let skopeo: Skopeo;
  let image: OciImage;
  let host: string;

  before(async () => {
    tmp = makeTempDir('e2e-failover');
    cluster = await startRealHarborCluster(tmp.dir, 3);
    lb = await startApp(
      cluster.nodes.map((n) => n.url),
      { proxy: { workers: 2 }, health: { enabled: true, interval: '500ms', timeout: '1s' } },
    );
    host = new URL(lb.url).host;
    skopeo = new Skopeo(tmp.dir);
    image = makeOciImage(join(tmp.dir, 'image'), [1024 * 1024, 512 * 1024]);
  });

  after(async () => {
    await lb?.close();
    await cluster?.close();
    tmp?.remove();
  });

  it('keeps skopeo pulls succeeding while a registry process is SIGKILLed', async () => {
    const ref = `docker://${host}/library/failover:v1`;
    const creds = ['--creds', 'admin:Harbor12345'];
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, ref]);
    assert.equal(push.code, 0, push.stderr);

    const results: number[] = [];
    for (let i = 0; i < 6; i++) {
      if (i === 2) cluster.registries[1]!.process.kill('SIGKILL');
      const out = skopeo.writableDir(`pull-${i}`);
      const pull = await skopeo.run(['copy', '--src-tls-verify=false', '--src-creds', 'admin:Harbor12345', ref, `dir:${out}`]);
      assert.equal(pull.code, 0, `pull ${i}: ${pull.stderr}`);
      results.push(pull.code);
      const inspect = await skopeo.run(['inspect', '--tls-verify=false', ...creds, '--raw', ref]);
      assert.equal(inspect.code, 0, `inspect ${i}: ${inspect.stderr}`);
    }
    assert.deepEqual(results, [0, 0, 0, 0, 0, 0]);
    // Its core still answers and reports the registry down: n2 leaves pulls and pushes (health.componentRoutes).
    const down = await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === 'n2' && Array.isArray(l.out) && l.out.includes('v2'), 30_000, 'n2 out of the registry routes');
    assert.match(String(down.why), /registry/, 'the log says why');
  });
});
