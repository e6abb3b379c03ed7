import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startSimCluster, type NodeFault, type SimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

async function setup(t: { after: (fn: () => unknown) => void }, faults: NodeFault[], probe: 'off' | 'once' = 'off', rootCert?: 'cluster' | 'foreign'): Promise<{ sim: SimCluster; lb: StartedApp }> {
  const tmp = makeTempDir('token');
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, faults);
  t.after(() => sim.close());
  const lb = await startApp(
    sim.nodes.map((n) => n.url),
    {
      balance: { policy: 'round-robin' },
      token: { rootCert: (rootCert === 'foreign' ? sim.foreign : sim.cluster).certFile, probe: { enabled: probe === 'once', interval: '1h' } },
    },
  );
  t.after(() => lb.close());
  return { sim, lb };
}

/** docker login and a pull's first steps: a token through the proxy, then /v2/ with it. */
async function roundTrip(lb: StartedApp): Promise<{ token: number; v2: number }> {
  const tok = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: BASIC } });
  if (tok.status !== 200) return { token: tok.status, v2: 0 };
  const { token } = JSON.parse(tok.body.toString()) as { token: string };
  const v2 = await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } });
  return { token: tok.status, v2: v2.status };
}

describe('token awareness', () => {
  it('a node signing with a foreign key: its first token is reissued elsewhere, 20 logins all work, it is quarantined', async (t) => {
    const { lb } = await setup(t, ['none', 'foreign-key', 'none']);
    // Round robin: the second token request goes to n2, whose token must never reach the client.
    const tokens = [];
    for (let i = 0; i < 2; i++) {
      const r = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: BASIC } });
      assert.equal(r.status, 200);
      tokens.push((JSON.parse(r.body.toString()) as { token: string }).token);
    }
    const second = (await lb.logs.waitForRequests(2))[1]!;
    assert.deepEqual([second.reason, second.node, second.attempts], ['reissued', 'n3', 2]);
    // The client's bad token is suspicion; harbor-lb's own probe of n2, asked for at once, convicts.
    const suspected = await lb.logs.waitFor((l) => l.event === 'node_suspected');
    assert.deepEqual([suspected.node, suspected.cause], ['n2', 'token']);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.code === 'TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.equal(flag.node, 'n2');
    assert.match(String(flag.fix), /private_key\.pem and root\.crt/);
    assert.deepEqual([(flag.evidence as { problem: string }).problem, (flag.evidence as { source: string }).source], ['FOREIGN_KEY', 'probe']);
    const quarantined = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
    const tookMs = Date.parse(String(quarantined.time)) - Date.parse(String(second.time)) + Number(second.durationMs);
    t.diagnostic(`first bad token to quarantine: ${tookMs} ms`);
    assert.ok(tookMs < 1000, `quarantined ${tookMs} ms after its first bad token`);

    const results = [];
    for (let i = 0; i < 20; i++) results.push(await roundTrip(lb));
    assert.deepEqual(results.filter((r) => r.token !== 200 || r.v2 !== 200), [], 'no client saw a failure');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_flag' && l.code === 'TOKEN_SIGNED_WITH_FOREIGN_KEY').length, 1, 'logged once');
    assert.ok(lb.logs.requests().slice(2).every((l) => l.node !== 'n2'), 'no traffic of any kind to a quarantined node');
    const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string; flags: Array<{ code: string; message: string }> }> };
    const n2 = status.nodes.find((n) => n.name === 'n2')!;
    assert.equal(n2.state, 'quarantined');
    assert.equal(n2.flags[0]!.code, 'TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.match(n2.flags[0]!.message, /issues tokens signed with key [A-Z2-7:]{59}; the cluster's root\.crt holds/);
    const metrics = (await send(`${lb.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /^harbor_lb_token_verdicts_total\{node="n2",verdict="bad"\} 1$/m, 'the probe found one bad token');
    assert.match(metrics, /^harbor_lb_token_verdicts_total\{node="n2",verdict="suspected"\} 1$/m, 'the client got one, suspicion');
    // The test certificates last 30 days: inside the warning window.
    const expiring = await lb.logs.waitFor((l) => l.event === 'root_cert_expiring');
    assert.match(String(expiring.msg), /expires .*rotate the cluster key pair/);
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(lb.logs.text()), 'no token in the log');
  });

  it('the seed failure under mixed traffic: whichever symptom shows first, n2 alone is flagged and no client fails', async (t) => {
    const { lb } = await setup(t, ['none', 'foreign-key', 'none']);
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await roundTrip(lb));
    assert.deepEqual(results.filter((r) => r.token !== 200 || r.v2 !== 200), []);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
    const trustFlags = lb.logs.lines.filter((l) => l.event === 'node_flag' && l.code !== 'REALM_BYPASSES_PROXY');
    assert.deepEqual([...new Set(trustFlags.map((l) => l.node))], ['n2']);
  });

  it("a node whose registry trusts a foreign cert: its 401 invalid_token is held back, the GET retried, the node flagged", async (t) => {
    const { lb } = await setup(t, ['none', 'foreign-trust', 'none']);
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await roundTrip(lb));
    assert.deepEqual(results.filter((r) => r.token !== 200 || r.v2 !== 200), []);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.code === 'REGISTRY_REJECTS_CLUSTER_TOKEN');
    assert.deepEqual([flag.node, (flag.evidence as { source: string }).source], ['n2', 'probe']);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
    const retried = lb.logs.requests().find((l) => l.route === 'v2' && l.reason === 'retried');
    assert.ok(retried, 'the rejected GET went to another node');
    assert.equal(retried.status, 200);
  });

  it('a small body refused as invalid_token is sent again to another node; a large one cannot be', async (t) => {
    const { lb } = await setup(t, ['none', 'foreign-trust', 'none']);
    const tok = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: BASIC } });
    const auth = { authorization: `Bearer ${(JSON.parse(tok.body.toString()) as { token: string }).token}`, 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    // Round robin: the token came from n1, this PUT goes to n2, whose registry refuses the token.
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
    const put = await send(`${lb.url}/v2/library/a/manifests/v1`, { method: 'PUT', headers: auth, body: manifest });
    assert.notEqual(put.status, 401, 'the client never sees the refusal');
    const line = (await lb.logs.waitForRequests(2))[1]!;
    assert.deepEqual([line.node, line.reason, line.attempts, line.bytesIn], ['n3', 'retried', 2, manifest.length]);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');

    // A body over 64 KiB is streamed, so it cannot be sent twice: with n2 back in rotation the refusal reaches the client.
    lb.app.nodes.release(lb.app.nodes.get('n2')!);
    const big = Buffer.alloc(100 * 1024, 1);
    const answers: number[] = [];
    for (let i = 0; i < 3; i++) answers.push((await send(`${lb.url}/v2/library/a/manifests/big${i}`, { method: "PUT", headers: auth, body: big })).status);
    assert.ok(answers.includes(401), `one of round robin's three went to n2: ${answers.join(',')}`);
  });

  it('a fixed node leaves quarantine by the probe alone, and the flag is cleared in the log', { timeout: 15_000 }, async (t) => {
    const { sim, lb } = await setup(t, ['none', 'foreign-key', 'none'], 'once');
    await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.node === 'n2');
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined');
    await sim.restart(1, 'none');
    await lb.app.trustProbe!.round();
    const cleared = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === false);
    assert.deepEqual([cleared.node, cleared.code], ['n2', 'TOKEN_SIGNED_WITH_FOREIGN_KEY']);
    assert.notEqual(lb.app.nodes.get('n2')!.state, 'quarantined');
    assert.equal(lb.app.nodes.get('n2')!.flags.size, 1, 'only the realm warning is left');
    assert.ok(lb.app.nodes.get('n2')!.flags.has('REALM_BYPASSES_PROXY'));
  });

  it('the probe flags a registry that rejects cluster tokens, and a realm that bypasses the proxy', async (t) => {
    const { lb } = await setup(t, ['none', 'foreign-trust'], 'once');
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'REGISTRY_REJECTS_CLUSTER_TOKEN');
    assert.equal(flag.node, 'n2');
    assert.equal((flag.evidence as { source: string }).source, 'probe');
    const realm = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'REALM_BYPASSES_PROXY');
    assert.match(String(realm.fix), /external_url/);
    assert.equal(lb.app.nodes.get('n1')!.state !== 'quarantined', true);
  });

  it("fails open when no node's token verifies: harbor-lb's own rootCert is the likelier error", async (t) => {
    const { lb } = await setup(t, ['none', 'none', 'none'], 'off', 'foreign');
    const r = await roundTrip(lb);
    assert.deepEqual(r, { token: 200, v2: 200 }, 'clients keep working');
    const suspect = await lb.logs.waitFor((l) => l.event === 'token_trust_suspect');
    assert.match(String(suspect.msg), /own rootCert is the likelier error/);
    for (const n of lb.app.nodes.all) assert.notEqual(n.state, 'quarantined');
    await roundTrip(lb);
    assert.equal(lb.logs.lines.filter((l) => l.event === 'token_trust_suspect').length, 1, 'said once');
  });

  it('stops start-up naming token.rootCert when the file cannot be used', async () => {
    await assert.rejects(
      () => startApp(['http://127.0.0.1:1'], { token: { rootCert: '/nonexistent/root.crt' } }),
      /token\.rootCert: cannot use \/nonexistent\/root\.crt/,
    );
  });
});
