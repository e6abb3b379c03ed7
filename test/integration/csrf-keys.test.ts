import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { startApp, type StartedApp } from '../support/app.js';
import { runDoctor } from '../support/doctor.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';

/** Three simulated nodes; n3 was installed on its own and got a CSRF key of its own (harbor#21060). */
async function cluster(t: { after: (fn: () => unknown) => void }) {
  const tmp = makeTempDir('csrf');
  t.after(tmp.remove);
  const pair = makeTokenKeyPair(tmp.dir, 'cluster');
  const keys = ['shared-csrf-key-of-32-characters', 'shared-csrf-key-of-32-characters', 'n3-own-csrf-key-of-32-characters'];
  const nodes = await Promise.all(keys.map((csrfKey, i) => new SimulatedHarborNode({ name: `h${i + 1}`, signingKey: pair.key, realm: 'request', csrfKey }).start()));
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  return { tmp, pair, nodes };
}

/** A browser's UI login: load the portal (CSRF cookie and token), then POST /c/login echoing the token. */
async function uiLogin(lb: StartedApp): Promise<number> {
  const page = await send(`${lb.url}/`);
  const cookie = String(page.headers['set-cookie']).split(';')[0]!;
  const token = String(page.headers['x-harbor-csrf-token']);
  const login = await send(`${lb.url}/c/login`, {
    method: 'POST',
    headers: { cookie, 'x-harbor-csrf-token': token, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'principal=admin&password=Harbor12345',
  });
  return login.status;
}

describe('nodes with different CSRF keys (issue 13: CSRF_KEY_DIFFERS)', () => {
  it('UI logins all work through harbor-lb: a browser stays on the node that minted its CSRF cookie', async (t) => {
    const { nodes } = await cluster(t);
    // Round robin without the cookie pin would send the login POST to another node a third of the time or more.
    const lb = await startApp(nodes.map((n) => n.url), { balance: { policy: 'round-robin' }, sticky: { keys: ['upload', 'session'] } });
    t.after(() => lb.close());
    const results: number[] = [];
    for (let i = 0; i < 12; i++) results.push(await uiLogin(lb));
    assert.deepEqual([...new Set(results)], [200]);
    const logins = lb.logs.requests().filter((l) => l.path === '/c/login');
    assert.ok(logins.every((l) => l.reason === 'pinned' && l.affinity === 'session'));
  });

  it('without that pin, the same logins fail at random: the test above would catch a regression', async (t) => {
    const { nodes } = await cluster(t);
    const lb = await startApp(nodes.map((n) => n.url), { balance: { policy: 'round-robin' }, sticky: { keys: ['upload'] } });
    t.after(() => lb.close());
    const results: number[] = [];
    for (let i = 0; i < 12; i++) results.push(await uiLogin(lb));
    assert.ok(results.includes(403), results.join(','));
  });

  it('the trust probe names the node whose key differs, with the nodes it differs from', async (t) => {
    const { nodes, pair } = await cluster(t);
    const lb = await startApp(nodes.map((n) => n.url), { token: { rootCert: pair.certFile, probe: { interval: '1h' } } });
    t.after(() => lb.close());
    await lb.app.trustProbe!.round();
    const line = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'CSRF_KEY_DIFFERS');
    assert.equal(line.node, 'n3');
    assert.deepEqual((line.evidence as { differsFrom: string[] }).differsFrom, ['n1', 'n2']);
    assert.match(String(line.fix), /CSRF_KEY/);
    assert.deepEqual(lb.app.nodes.all.map((n) => n.flags.has('CSRF_KEY_DIFFERS')), [false, false, true]);
    assert.notEqual(lb.app.nodes.get('n3')!.state, 'quarantined', 'a warning: browsers are kept on one node meanwhile');
  });

  it('doctor exits 1 naming the node', async (t) => {
    const { nodes, tmp, pair } = await cluster(t);
    const r = await runDoctor(tmp.dir, nodes.map((n) => n.url), pair.certFile);
    assert.equal(r.code, 1, r.text);
    assert.match(r.text, /CSRF_KEY_DIFFERS on n3: n3's CSRF key differs from n1, n2's/);
  });
});
