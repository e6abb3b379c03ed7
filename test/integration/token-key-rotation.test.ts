import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { startFromFile } from '../support/file-app.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

it('rotates the token key pair without a restart: a reload reads root.crt again, and the node already on the new key is trusted', async (t) => {
  const tmp = makeTempDir('rotation');
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, ['none', 'none', 'none']);
  t.after(() => sim.close());
  // Mid-rotation: h3 already signs with the new key; every registry trusts both.
  const port = sim.nodes[2]!.port;
  await sim.nodes[2]!.close();
  sim.nodes[2] = await new SimulatedHarborNode({ name: 'h3', port, signingKey: sim.foreign.key, registryTrusts: [sim.cluster.key, sim.foreign.key] }).start();
  for (const i of [0, 1]) {
    const p = sim.nodes[i]!.port;
    await sim.nodes[i]!.close();
    sim.nodes[i] = await new SimulatedHarborNode({ name: `h${i + 1}`, port: p, signingKey: sim.cluster.key, registryTrusts: [sim.cluster.key, sim.foreign.key] }).start();
  }
  const bundle = join(tmp.dir, 'root.crt');
  writeFileSync(bundle, sim.cluster.certPem);
  const file = join(tmp.dir, 'harbor-lb.yaml');
  writeFileSync(
    file,
    [
      'listen: {address: 127.0.0.1, port: 0}',
      'admin: {address: 127.0.0.1, port: 0}',
      'nodes:',
      ...sim.nodes.map((n, i) => `  - {name: n${i + 1}, url: "${n.url}"}`),
      'health: {enabled: false}',
      `token: {rootCert: ${bundle}, probe: {interval: 24h}}`,
    ].join('\n'),
  );
  const { app, logs } = await startFromFile(file);
  t.after(() => app.close(0));
  const n3 = app.nodes.get('n3')!;
  await app.trustProbe!.round();
  assert.ok(n3.flags.has('TOKEN_SIGNED_WITH_FOREIGN_KEY'), 'before the bundle holds the new key, h3 signs with a foreign one');
  assert.equal(n3.state, 'quarantined');

  // A bundle that is not PEM: refused whole, the old keys stay.
  writeFileSync(bundle, 'not a certificate');
  const refused = app.reload();
  assert.equal(refused.ok, false);
  assert.ok(!refused.ok && refused.problems.some((p) => p.startsWith('token.rootCert:')), JSON.stringify(refused));

  // Step 1 of the rotation: both certificates in root.crt, then a reload.
  writeFileSync(bundle, sim.cluster.certPem + sim.foreign.certPem);
  const r = app.reload();
  assert.ok(r.ok, JSON.stringify(r));
  const changed = logs.lines.find((l) => l.event === 'token_keys_changed');
  assert.equal((changed?.kids as string[]).length, 2);
  await app.trustProbe!.round();
  assert.equal(n3.flags.has('TOKEN_SIGNED_WITH_FOREIGN_KEY'), false, 'the new key is the cluster key now');
  assert.notEqual(n3.state, 'quarantined');
  // (The simulated nodes name themselves as realm: REALM_BYPASSES_PROXY is theirs, not the rotation's.)
  const trustFlags = app.nodes.all.flatMap((n) => [...n.flags.keys()].filter((f) => f.startsWith('TOKEN_') || f.startsWith('REGISTRY_')));
  assert.deepEqual(trustFlags, []);
});
