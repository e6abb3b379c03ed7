import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runDoctor } from '../support/doctor.js';
import { startRealHarborCluster, type RealNodeOptions } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const CREDS = 'doctor: {credentials: {username: admin, password: Harbor12345}}\n';

async function doctorOnReal(t: { after: (fn: () => unknown) => void }, perNode: RealNodeOptions[]) {
  const tmp = makeTempDir('e2e-doctor');
  t.after(tmp.remove);
  const cluster = await startRealHarborCluster(tmp.dir, perNode.length, perNode);
  t.after(() => cluster.close());
  const r = await runDoctor(tmp.dir, cluster.nodes.map((n) => n.url), cluster.keys.certFile, CREDS);
  return { ...r, errors: r.report.problems.filter((p) => p.severity === 'error').map((p) => `${p.node}:${p.code}`).sort() };
}

describe('harbor-lb doctor against real registries', () => {
  it('exits 0 on a healthy cluster, having run the upload check', async (t) => {
    const r = await doctorOnReal(t, [{}, {}, {}]);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.report.uploadCheck, 'done');
  });

  it('names a node with a foreign key pair and exits 1', async (t) => {
    const r = await doctorOnReal(t, [{}, { fault: 'foreign-key' }, {}]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.errors, ['n2:REGISTRY_REJECTS_CLUSTER_TOKEN', 'n2:TOKEN_SIGNED_WITH_FOREIGN_KEY']);
  });

  it('names a node whose registry trusts a foreign root.crt and exits 1', async (t) => {
    const r = await doctorOnReal(t, [{}, { fault: 'foreign-trust' }, {}]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.errors, ['n2:REGISTRY_REJECTS_CLUSTER_TOKEN']);
  });

  it("finds a registry whose http.secret differs by continuing an upload on it", async (t) => {
    const r = await doctorOnReal(t, [{}, { httpSecret: 'another-secret' }, {}]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.errors, ['n2:HTTP_SECRET_DIFFERS']);
    assert.match(r.text, /PROBLEM HTTP_SECRET_DIFFERS on n2: an upload started on n1 cannot continue on n2/);
  });
});
