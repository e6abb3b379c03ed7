import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { Skopeo } from '../support/skopeo.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

/** `rounds` skopeo login/push/pull round trips through harbor-lb; the failures, with skopeo's words. */
async function roundTrips(skopeo: Skopeo, host: string, imageDir: string, repo: string, rounds: number): Promise<string[]> {
  const failures: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const login = await skopeo.run(['login', '--tls-verify=false', '-u', 'admin', '-p', 'Harbor12345', host]);
    if (login.code !== 0) failures.push(`login ${i}: ${login.stderr}`);
    const ref = `docker://${host}/library/${repo}:r${i}`;
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${imageDir}:v1`, ref]);
    if (push.code !== 0) failures.push(`push ${i}: ${push.stderr}`);
    const pull = await skopeo.run(['copy', '--src-tls-verify=false', ref, `dir:${skopeo.writableDir(`${repo}-${i}`)}`]);
    if (pull.code !== 0) failures.push(`pull ${i}: ${pull.stderr}`);
  }
  return failures;
}

/** Three real nodes, node 2 with `fault`, harbor-lb in front, a skopeo user and a small image. */
async function setup(t: { after: (fn: () => unknown) => void }, fault: 'foreign-key' | 'foreign-trust', probe: { enabled?: boolean; interval?: string }) {
  const { dir, cluster, lb } = await realClusterBehindLb(t, 'e2e-token', 3, (c) => ({ proxy: { workers: 2 }, token: { rootCert: c.keys.certFile, probe } }), [{}, { fault }, {}]);
  const image = makeOciImage(join(dir, 'image'), [256 * 1024]);
  return { cluster, lb, host: new URL(lb.url).host, skopeo: new Skopeo(dir), imageDir: image.dir };
}

const raisedFlags = (lb: StartedApp) =>
  lb.logs.lines.filter((l) => l.event === 'node_flag' && l.raised === true).map((l) => `${String(l.node)}:${String(l.code)}`);

/** The seed's second failure against real registries: one node of three with a foreign key pair. */
describe('real registries with a misconfigured node', () => {
  it('20 skopeo login/push/pull round trips all succeed; the node is flagged, quarantined, and cleared by the probe once fixed', async (t) => {
    const { cluster, lb, host, skopeo, imageDir } = await setup(t, 'foreign-key', { interval: '1s' });
    assert.deepEqual(await roundTrips(skopeo, host, imageDir, 'seed', 20), [], 'a real client saw no failure');

    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.node === 'n2' && l.code !== 'REALM_BYPASSES_PROXY');
    t.diagnostic(`n2 flagged ${String(flag.code)} (source ${(flag.evidence as { source: string }).source})`);
    const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string; flags: Array<{ code: string }> }> };
    const n2 = status.nodes.find((n) => n.name === 'n2')!;
    assert.equal(n2.state, 'quarantined');
    for (const other of status.nodes.filter((n) => n.name !== 'n2')) {
      assert.notEqual(other.state, 'quarantined');
      assert.deepEqual(other.flags.map((f) => f.code).filter((c) => c !== 'REALM_BYPASSES_PROXY'), []);
    }
    const counts = { requests: lb.logs.requests().length, reissued: lb.logs.requests().filter((l) => l.reason === 'reissued').length };
    t.diagnostic(`${counts.requests} proxied requests, ${counts.reissued} token requests reissued`);

    // The operator copies the shared pair to n2 and restarts it: the probe alone takes it back.
    await cluster.restart(1, {});
    const cleared = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === false && l.node === 'n2' && l.code === flag.code);
    assert.ok(cleared);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.from === 'quarantined');
    assert.notEqual(lb.app.nodes.get('n2')!.state, 'quarantined');
  });

  it('the same with periodic probes off: traffic makes harbor-lb probe the node, which convicts it, and no skopeo round trip fails', async (t) => {
    const { lb, host, skopeo, imageDir } = await setup(t, 'foreign-key', { enabled: false });
    assert.deepEqual(await roundTrips(skopeo, host, imageDir, 'traffic', 10), []);
    const quarantined = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
    // From the first client request n2 answered badly (a token that does not verify, reissued
    // elsewhere; or its registry refusing a cluster token, retried elsewhere) to the quarantine.
    const first = lb.logs.requests().find((l) => l.reason === 'reissued' || l.reason === 'retried')!;
    const firstSentAt = Date.parse(String(first.time)) - Number(first.durationMs);
    const tookMs = Date.parse(String(quarantined.time)) - firstSentAt;
    t.diagnostic(`n2 quarantined ${tookMs.toFixed(0)} ms after the first client request it answered badly (${String(first.route)}, ${String(first.reason)})`);
    assert.ok(tookMs < 1000, `quarantined ${tookMs} ms after its first bad answer`);
    t.diagnostic(`flags raised by the probes traffic asked for: ${raisedFlags(lb).join(', ')}`);
    assert.ok(raisedFlags(lb).every((f) => f.startsWith('n2:')));
  });

  it('a node whose registry trusts a foreign root.crt: round trips succeed, the refusals make harbor-lb probe it, it is flagged REGISTRY_REJECTS_CLUSTER_TOKEN', async (t) => {
    const { lb, host, skopeo, imageDir } = await setup(t, 'foreign-trust', { enabled: false });
    assert.deepEqual(await roundTrips(skopeo, host, imageDir, 'trust', 5), []);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'REGISTRY_REJECTS_CLUSTER_TOKEN');
    assert.equal(flag.node, 'n2');
    assert.equal((flag.evidence as { source: string }).source, 'probe', 'only harbor-lb\'s own probe convicts');
    assert.ok(lb.logs.lines.some((l) => l.event === 'node_suspected' && l.node === 'n2' && l.cause === 'registry'), 'traffic raised the suspicion');
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
  });
});
