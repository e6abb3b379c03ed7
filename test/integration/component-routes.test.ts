import assert from 'node:assert/strict';
import http from 'node:http';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startServer } from '../support/servers.js';

const COMPONENTS = ['core', 'database', 'jobservice', 'portal', 'redis', 'registry', 'registryctl'];

/** A Harbor-shaped node: its health JSON reports `down` components unhealthy; everything else answers its name. */
async function harborNode(name: string, down: Set<string>) {
  return startServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/api/v2.0/health') {
      const components = COMPONENTS.map((c) => (down.has(c) ? { name: c, status: 'unhealthy', error: 'dial tcp: connection refused' } : { name: c, status: 'healthy' }));
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ status: down.size > 0 ? 'unhealthy' : 'healthy', components }));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ node: name }));
  });
}

it("a node whose registry is down leaves the registry routes only; one whose core is down leaves them all", async (t) => {
  const down = new Set<string>();
  const n1 = await harborNode('n1', down);
  const n2 = await harborNode('n2', new Set());
  t.after(() => Promise.all([n1.close(), n2.close()]));
  const lb = await startApp([n1.url, n2.url], {
    health: { enabled: true, interval: '50ms', timeout: '1s', healthyAfter: 1, unhealthyAfter: 1 },
    balance: { policy: 'round-robin' },
  });
  t.after(() => lb.close());
  await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'healthy', 10_000);
  await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'healthy', 10_000);
  const servedBy = async (path: string, n = 8) => {
    const names = new Set<string>();
    for (let i = 0; i < n; i++) names.add((JSON.parse((await send(`${lb.url}${path}`)).body.toString()) as { node: string }).node);
    return [...names].sort();
  };
  assert.deepEqual(await servedBy('/v2/lib/a/manifests/v1'), ['n1', 'n2']);

  down.add('registry');
  const out = await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === 'n1' && Array.isArray(l.out) && l.out.length > 0, 10_000);
  assert.deepEqual(out.out, ['v2', 'upload']);
  assert.match(String(out.why), /registry: unhealthy/);
  assert.deepEqual(await servedBy('/v2/lib/a/manifests/v1'), ['n2'], 'pulls leave n1');
  assert.deepEqual(await servedBy('/v2/lib/a/blobs/uploads/', 4), ['n2'], 'pushes too');
  assert.deepEqual(await servedBy('/api/v2.0/projects'), ['n1', 'n2'], 'the UI and API still go to n1');
  assert.deepEqual(await servedBy('/service/token?service=harbor-registry'), ['n1', 'n2'], 'and logins');
  const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string; routesOut: { routes: string[]; why: string } | null }> };
  assert.deepEqual(status.nodes.map((n) => [n.name, n.state, n.routesOut?.routes ?? null]), [['n1', 'healthy', ['v2', 'upload']], ['n2', 'healthy', null]]);

  // Core down too: n1 can serve nothing.
  down.add('core');
  await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy', 10_000);
  assert.deepEqual(await servedBy('/api/v2.0/projects'), ['n2']);

  // All well again: every route.
  down.clear();
  await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === 'n1' && Array.isArray(l.out) && l.out.length === 0, 10_000);
  await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'healthy' && lb.logs.lines.indexOf(l) > lb.logs.lines.findIndex((x) => x.to === 'unhealthy'), 10_000);
  assert.deepEqual(await servedBy('/v2/lib/a/manifests/v1'), ['n1', 'n2']);
});
