import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

/** Three simulated nodes on the cluster key; n3's clock is two minutes ahead (harbor#15911). */
async function setup(t: { after: (fn: () => unknown) => void }, health: boolean): Promise<StartedApp> {
  const tmp = makeTempDir('skew');
  t.after(tmp.remove);
  const pair = makeTokenKeyPair(tmp.dir, 'cluster');
  const nodes = await Promise.all(
    [0, 0, 120_000].map((clockOffsetMs, i) => new SimulatedHarborNode({ name: `h${i + 1}`, signingKey: pair.key, realm: 'request', clockOffsetMs }).start()),
  );
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const lb = await startApp(nodes.map((n) => n.url), {
    balance: { policy: 'round-robin' },
    health: health ? { enabled: true, interval: '100ms' } : { enabled: false },
    token: { rootCert: pair.certFile, probe: { enabled: false } },
  });
  t.after(() => lb.close());
  return lb;
}

async function login(lb: StartedApp): Promise<{ token: number; v2: number }> {
  const tok = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: BASIC } });
  if (tok.status !== 200) return { token: tok.status, v2: 0 };
  const { token } = JSON.parse(tok.body.toString()) as { token: string };
  return { token: 200, v2: (await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status };
}

describe('a node whose clock is off (issue 13: NODE_CLOCK_SKEW)', () => {
  it('is named from its Date headers with the offset, its token requests go elsewhere, every login works, no quarantine', async (t) => {
    const lb = await setup(t, true);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'NODE_CLOCK_SKEW' && l.raised === true);
    assert.equal(flag.node, 'n3');
    const offset = (flag.evidence as { offsetSeconds: number }).offsetSeconds;
    assert.ok(Math.abs(offset - 120) <= 2, `offset ${offset} s`);
    for (let i = 0; i < 9; i++) assert.deepEqual(await login(lb), { token: 200, v2: 200 }, `login ${i}`);
    const tokenLines = lb.logs.requests().filter((l) => l.route === 'token');
    assert.equal(tokenLines.filter((l) => l.node === 'n3').length, 0, 'no token request went to n3');
    assert.ok(lb.logs.requests().some((l) => l.route === 'v2' && l.node === 'n3'), 'n3 still serves registry traffic');
    const n3 = lb.app.nodes.get('n3')!;
    assert.notEqual(n3.state, 'quarantined');
    assert.deepEqual([...n3.flags.keys()], ['NODE_CLOCK_SKEW']);
    const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; clockOffsetMs: number | null }> };
    assert.ok(Math.abs(status.nodes.find((n) => n.name === 'n3')!.clockOffsetMs! - 120_000) < 2_000);
    assert.ok(Math.abs(status.nodes.find((n) => n.name === 'n1')!.clockOffsetMs!) < 2_000);
    const metrics = (await send(`${lb.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /^harbor_lb_node_clock_offset_seconds\{node="n3"\} 1(19|20|21)\.\d+$/m);
  });

  it('without health checks, its first "not valid yet" token names the clock, not the key: reissued, flagged NODE_CLOCK_SKEW, not quarantined', async (t) => {
    const lb = await setup(t, false);
    // Round robin: the third token request lands on n3.
    for (let i = 0; i < 6; i++) assert.deepEqual(await login(lb), { token: 200, v2: 200 }, `login ${i}`);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true);
    assert.deepEqual([flag.node, flag.code, (flag.evidence as { source: string }).source], ['n3', 'NODE_CLOCK_SKEW', 'token']);
    assert.ok(lb.logs.requests().some((l) => l.route === 'token' && l.reason === 'reissued'));
    const n3 = lb.app.nodes.get('n3')!;
    assert.equal(n3.flags.has('TOKEN_CLAIMS_REJECTED'), false);
    assert.notEqual(n3.state, 'quarantined');
  });
});
