import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startNodeProcess } from '../support/node-process.js';

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
    assert.match(String(out.why), /ejected for 1s/);

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
