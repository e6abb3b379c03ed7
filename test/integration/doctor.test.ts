import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { runDoctor } from '../support/doctor.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { deadPort } from '../support/servers.js';
import { startSimCluster, type NodeFault } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

async function doctorOn(t: { after: (fn: () => unknown) => void }, faults: NodeFault[], opts: { dead?: boolean; rootCert?: 'foreign' } = {}) {
  const tmp = makeTempDir('doctor');
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, faults);
  t.after(() => sim.close());
  const urls = sim.nodes.map((n) => n.url);
  if (opts.dead) urls.push(`http://127.0.0.1:${await deadPort()}`);
  return runDoctor(tmp.dir, urls, (opts.rootCert === 'foreign' ? sim.foreign : sim.cluster).certFile);
}

const errorsOf = (r: { report: { problems: Array<{ severity: string; node: string | null; code: string }> } }) =>
  r.report.problems.filter((p) => p.severity === 'error').map((p) => `${p.node}:${p.code}`);

describe('harbor-lb doctor', () => {
  it('exits 0 on a healthy cluster; a realm pointing at the node is a warning with its fix', async (t) => {
    const r = await doctorOn(t, ['none', 'none', 'none']);
    assert.equal(r.code, 0, r.text);
    assert.deepEqual(errorsOf(r), []);
    assert.match(r.text, /^n1\s+yes\s+healthy\s+good [A-Z2-7:]{14}…\s+node address$/m);
    assert.match(r.text, /warning REALM_BYPASSES_PROXY on n1: .*\n  fix: set hostname \/ external_url in n1's harbor\.yml to the public name/);
    assert.match(r.text, /^result: OK$/m);
  });

  it('names a node whose clock is off, with the offset, and exits 1 (issue 13)', async (t) => {
    const tmp = makeTempDir('doctor-skew');
    t.after(tmp.remove);
    const pair = makeTokenKeyPair(tmp.dir, 'cluster');
    const nodes = await Promise.all([0, 120_000].map((clockOffsetMs, i) => new SimulatedHarborNode({ name: `h${i + 1}`, signingKey: pair.key, realm: 'request', clockOffsetMs }).start()));
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    const r = await runDoctor(tmp.dir, nodes.map((n) => n.url), pair.certFile);
    assert.equal(r.code, 1, r.text);
    assert.deepEqual(errorsOf(r), ['n2:NODE_CLOCK_SKEW']);
    assert.match(r.text, /NODE_CLOCK_SKEW on n2: n2's clock is 1(19|20|21) s ahead of this machine's/);
    assert.ok(Math.abs(r.report.nodes[1]!.clockOffsetMs! - 120_000) < 2_000);
  });

  it('warns of a realm with the public host but the other scheme (REALM_SCHEME_MISMATCH), with its fix', async (t) => {
    const tmp = makeTempDir('doctor-scheme');
    t.after(tmp.remove);
    const pair = makeTokenKeyPair(tmp.dir, 'cluster');
    // runDoctor's publicUrl is http://hub.example.com:8070; this node was set up for https.
    const node = await new SimulatedHarborNode({ name: 'h1', signingKey: pair.key, realm: 'https://hub.example.com:8070/service/token' }).start();
    t.after(() => node.close());
    const r = await runDoctor(tmp.dir, [node.url], pair.certFile);
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /warning REALM_SCHEME_MISMATCH on n1: .*clients use http.*\n  fix: set external_url in n1's harbor\.yml to http:\/\/hub\.example\.com:8070/);
  });

  it('names the node signing with a foreign key, with the cross-trust matrix, and exits 1', async (t) => {
    const r = await doctorOn(t, ['none', 'foreign-key', 'none']);
    assert.equal(r.code, 1);
    assert.deepEqual(errorsOf(r).sort(), ['n2:REGISTRY_REJECTS_CLUSTER_TOKEN', 'n2:TOKEN_SIGNED_WITH_FOREIGN_KEY']);
    assert.deepEqual(r.report.trust, {
      n1: { n1: true, n2: false, n3: true },
      n2: { n1: false, n2: true, n3: false },
      n3: { n1: true, n2: false, n3: true },
    });
    assert.match(r.text, /^n2\s+NO\s+yes\s+NO$/m, 'the matrix row of n2 as printed');
    assert.match(r.text, /fix: copy private_key\.pem and root\.crt from a good node/);
  });

  it('names a node whose registry trusts a foreign cert', async (t) => {
    const r = await doctorOn(t, ['none', 'foreign-trust', 'none']);
    assert.equal(r.code, 1);
    assert.deepEqual(errorsOf(r), ['n2:REGISTRY_REJECTS_CLUSTER_TOKEN']);
  });

  it('names an unreachable node', async (t) => {
    const r = await doctorOn(t, ['none', 'none'], { dead: true });
    assert.equal(r.code, 1);
    assert.deepEqual(errorsOf(r), ['n3:NODE_UNREACHABLE']);
  });

  it("says the proxy's own rootCert is the likelier error when no node's token verifies", async (t) => {
    const r = await doctorOn(t, ['none', 'none'], { rootCert: 'foreign' });
    assert.equal(r.code, 1);
    assert.ok(errorsOf(r).includes('null:ROOT_CERT_SUSPECT'));
  });
});
