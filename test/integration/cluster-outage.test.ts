import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startServer, type TestServer } from '../support/servers.js';

/**
 * A Harbor-like node whose /v2/ depends on a shared storage that the test switches off and on;
 * its token service and UI do not need storage. `healthReports` makes the health JSON say so too.
 */
async function startStorageNode(storage: { down: boolean }, healthReports: boolean): Promise<TestServer> {
  return startServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/api/v2.0/health')) {
      res.setHeader('content-type', 'application/json');
      const registry = healthReports && storage.down ? 'unhealthy' : 'healthy';
      return res.end(JSON.stringify({ status: registry, components: [{ name: 'core', status: 'healthy' }, { name: 'registry', status: registry }] }));
    }
    if (url.startsWith('/service/token')) return res.end('{"token":"t","expires_in":1800}');
    if (url.startsWith('/v2/') && storage.down) {
      res.writeHead(503, { 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"UNAVAILABLE","message":"storage unavailable","detail":null}]}');
    }
    res.end(url.startsWith('/v2/') ? 'manifest' : '<html>portal</html>');
  });
}

async function setup(t: { after: (fn: () => unknown) => void }, healthReports: boolean) {
  const storage = { down: false };
  const nodes = await Promise.all([0, 1, 2].map(() => startStorageNode(storage, healthReports)));
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const lb = await startApp(
    nodes.map((n) => n.url),
    healthReports ? { health: { enabled: true, interval: '100ms', unhealthyAfter: 1, healthyAfter: 1 } } : {},
  );
  t.after(() => lb.close());
  return { storage, lb };
}

/** The regression of issue 9: a storage hiccup ejected every node and kept pulls failing after storage was back. */
describe('a failure every node shares (storage down) is passed on, never made worse', () => {
  it('30 pulls during the hiccup get the nodes\' 503, nobody is ejected, token and UI answer 200 throughout, and the first pull after recovery succeeds', async (t) => {
    const { storage, lb } = await setup(t, false);
    assert.equal((await send(`${lb.url}/v2/library/a/manifests/v1`)).status, 200);
    storage.down = true;
    const during: number[] = [];
    for (let i = 0; i < 30; i++) {
      const pull = await send(`${lb.url}/v2/library/a/manifests/v1`);
      during.push(pull.status);
      assert.match(pull.body.toString(), /storage unavailable/, "the node's own answer, not the proxy's");
      assert.equal((await send(`${lb.url}/service/token?service=harbor-registry`)).status, 200, `token path during the hiccup (${i})`);
      assert.equal((await send(`${lb.url}/`)).status, 200, `UI during the hiccup (${i})`);
    }
    assert.deepEqual([...new Set(during)], [503]);
    assert.deepEqual(lb.app.nodes.all.map((n) => [n.name, lb.app.nodes.isEjected(n)]), [['n1', false], ['n2', false], ['n3', false]]);
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_state' && l.to === 'unhealthy').length, 0, 'no node state change at all');
    const degraded = lb.logs.lines.filter((l) => l.event === 'cluster_degraded');
    assert.deepEqual(degraded.map((l) => l.active), [true], 'logged once when it started');
    assert.equal(lb.app.outliers.clusterFailure?.status, 503);
    // Once it is known to be the cluster's, a 503 is passed on at once instead of being tried on every node.
    const last = lb.logs.requests().filter((l) => l.path === '/v2/library/a/manifests/v1').at(-1)!;
    assert.equal(last.attempts, 1);

    storage.down = false;
    assert.equal((await send(`${lb.url}/v2/library/a/manifests/v1`)).status, 200, 'the first pull after recovery');
  });

  // Found by a probe: requests to a path every node answers 503 (a component no node runs) turned
  // retries off for every route and every client, and lifted ejections made on other routes.
  it("a path every node answers 503 on one route (a client's doing, or a component down) stops retries on that route only", async (t) => {
    const flaky = { n2: true };
    const nodes = await Promise.all(
      ['n1', 'n2'].map((name) =>
        startServer((req, res) => {
          req.resume();
          const url = req.url ?? '/';
          if (url.startsWith('/chartrepo/')) return res.writeHead(503).end('no chart museum here');
          if (name === 'n2' && flaky.n2 && url.startsWith('/v2/')) return res.writeHead(503).end('n2 alone fails');
          res.end(`${name} ok`);
        }),
      ),
    );
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    // Ejections need a failed check, which this test does not want: the failures only count.
    const lb = await startApp(nodes.map((n) => n.url), { health: { enabled: false, passive: { consecutiveFailures: 1000 } } });
    t.after(() => lb.close());
    for (let i = 0; i < 4; i++) assert.equal((await send(`${lb.url}/chartrepo/library/charts/x.tgz`)).status, 503);
    assert.deepEqual([lb.app.outliers.clusterFailure?.status, lb.app.outliers.clusterFailure?.route], [503, 'other']);
    const degraded = lb.logs.lines.find((l) => l.event === 'cluster_degraded')!;
    assert.equal(degraded.route, 'other');
    // Pulls landing on n2, which fails alone, go on to n1 as ever.
    for (let i = 0; i < 8; i++) {
      const pull = await send(`${lb.url}/v2/library/a/manifests/${i}`);
      assert.deepEqual([pull.status, pull.body.toString()], [200, 'n1 ok'], `pull ${i}`);
    }
    assert.ok(lb.logs.requests().some((l) => String(l.path).startsWith('/v2/') && l.attempts === 2), 'some pull was retried');
  });

  it('when the health checks see the registry fail on every node, the nodes leave the registry routes only: tokens and UI answered, pulls get the nodes\' own 503', async (t) => {
    const { storage, lb } = await setup(t, true);
    for (const n of ['n1', 'n2', 'n3']) await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === n && l.to === 'healthy');
    storage.down = true;
    for (const n of ['n1', 'n2', 'n3']) await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === n && Array.isArray(l.out) && l.out.includes('v2'));
    for (let i = 0; i < 10; i++) {
      assert.equal((await send(`${lb.url}/service/token?service=harbor-registry`)).status, 200);
      assert.equal((await send(`${lb.url}/`)).status, 200);
      // No node is left for pulls: they go to every node (never refused), and the nodes' own answer is passed on.
      const pull = await send(`${lb.url}/v2/library/a/manifests/v1`);
      assert.match(pull.body.toString(), /storage unavailable/, "the nodes' own 503, not 'no Harbor node is available'");
    }
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 200, 'nodes answer: ready');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'panic' && l.active === true).length, 0, 'no node left the healthy state: no panic');
    storage.down = false;
    for (const n of ['n1', 'n2', 'n3']) await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === n && Array.isArray(l.out) && l.out.length === 0);
    assert.equal((await send(`${lb.url}/v2/library/a/manifests/v1`)).status, 200);
  });
});
