import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startNodeProcess } from '../support/node-process.js';
import { startServer } from '../support/servers.js';

/** Regression of issue 9: with active checks off, a passive ejection was permanent. */
describe('passive ejection with health.enabled: false', () => {
  it('a node killed and restarted comes back by itself once its back-off elapses', { timeout: 60_000 }, async (t) => {
    const nodes = await Promise.all([startNodeProcess('n1'), startNodeProcess('n2')]);
    t.after(() => Promise.all(nodes.map((n) => n.proc.stop())));
    const lb = await startApp(
      nodes.map((n) => n.url),
      { health: { enabled: false, passive: { consecutiveFailures: 1, ejectFor: '1s' } }, balance: { policy: 'round-robin' } },
    );
    t.after(() => lb.close());
    await nodes[0]!.proc.stop();
    // Failover serves every pull; the dead node is ejected on its first refusal.
    for (let i = 0; i < 4; i++) assert.equal((await send(`${lb.url}/v2/library/a/blobs/sha256:${i}`)).status, 200);
    const out = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy');
    assert.match(String(out.why), /ejected for 1s|does not answer: ECONNREFUSED; tried again in 1s/);

    const again = await startNodeProcess('n1', nodes[0]!.port);
    t.after(() => again.proc.stop());
    // No check runs: the back-off expiring is what brings it back.
    const back = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.from === 'unhealthy');
    assert.equal(back.to, 'unknown');
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      assert.equal((await send(`${lb.url}/v2/library/a/blobs/sha256:${i}`)).status, 200);
      served.add(String(lb.logs.requests().at(-1)!.node));
    }
    assert.deepEqual([...served].sort(), ['n1', 'n2'], 'round robin includes n1 again');
  });
});

describe('a node that does not answer, with health.enabled: false', () => {
  // Found in review: n2 ejected for earlier 503s, then n1 died; the cap kept n1 "available", so
  // every request went to n1, was refused, and got 503 although n2 served.
  it('is taken out whatever the ejection cap, and the ejected node that answers serves', async (t) => {
    const flaky = { failing: true };
    const n1 = await startServer((_q, r) => r.end('n1'));
    const n2 = await startServer((_q, r) => {
      if (flaky.failing) r.writeHead(503);
      r.end('n2');
    });
    t.after(() => Promise.all([n1.close(), n2.close()]));
    const lb = await startApp([n1.url, n2.url], { health: { enabled: false, passive: { consecutiveFailures: 2 } }, balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    for (let i = 0; i < 10 && !lb.app.nodes.isEjected(lb.app.nodes.get('n2')!); i++) assert.equal((await send(`${lb.url}/v2/a/manifests/1`)).status, 200);
    assert.ok(lb.app.nodes.isEjected(lb.app.nodes.get('n2')!), 'n2 ejected for its 503s');
    flaky.failing = false;
    await n1.close();
    for (let i = 0; i < 5; i++) {
      const r = await send(`${lb.url}/v2/a/manifests/1`);
      assert.equal(r.status, 200, `request ${i}: ${r.body.toString()}`);
      assert.equal(r.body.toString(), 'n2');
    }
  });
});
