import assert from 'node:assert/strict';
import { it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { judgeHealth } from '../../../src/health/verdict.js';

const REQUIRED = ['core', 'registry'];
const harbor = (components: Record<string, string>) =>
  JSON.stringify({
    status: Object.values(components).every((s) => s === 'healthy') ? 'healthy' : 'unhealthy',
    components: Object.entries(components).map(([name, status]) => (status === 'healthy' ? { name, status } : { name, status, error: 'dial tcp: refused' })),
  });
const all = { core: 'healthy', database: 'healthy', jobservice: 'healthy', portal: 'healthy', redis: 'healthy', registry: 'healthy', registryctl: 'healthy' };
const judge = (status: number, type: string | undefined, body: string, path = '/api/v2.0/health') => judgeHealth(path, status, type, body, REQUIRED);

it("reads Harbor's health JSON: a 200 that says registry is unhealthy takes the node out", () => {
  assert.equal(judge(200, 'application/json', harbor(all)).ok, true);
  const sick = judge(200, 'application/json', harbor({ ...all, registry: 'unhealthy' }));
  assert.equal(sick.ok, false);
  assert.equal(sick.detail, 'registry: unhealthy (dial tcp: refused)');
});

it('keeps a node whose failing components are not required (a jobservice outage must not stop pulls)', () => {
  const v = judge(200, 'application/json; charset=utf-8', harbor({ ...all, jobservice: 'unhealthy', registryctl: 'unhealthy' }));
  assert.equal(v.ok, true);
  assert.match(v.detail, /failing: jobservice/);
});

it('does not vouch for a required component the answer leaves out', () => {
  const v = judge(200, 'application/json', JSON.stringify({ status: 'healthy', components: [{ name: 'core', status: 'healthy' }] }));
  assert.deepEqual(v, { ok: false, detail: 'health does not report registry' });
});

it('judges plain health endpoints (Harbor 1.x ping, bare registry) by status', () => {
  assert.equal(judge(200, 'text/plain', '"Pong"', '/api/ping').ok, true);
  assert.equal(judge(200, undefined, '', '/').ok, true);
  assert.equal(judge(401, 'application/json', '{"errors":[]}', '/v2/').ok, true, 'a registry asking for a token is up');
  assert.deepEqual(judge(503, 'text/html', 'down', '/api/health'), { ok: false, detail: 'health answered 503' });
  assert.equal(judge(401, 'application/json', '{}', '/api/v2.0/health').ok, false);
  assert.equal(judge(200, 'application/json', '{"status":"unhealthy"}').ok, false);
  assert.deepEqual(judge(200, 'application/json', '{not json'), { ok: false, detail: 'health answered malformed JSON' });
});

const ROUTES_OF = validateConfig({ nodes: [{ name: 'a', url: 'http://127.0.0.1:1' }] }).health.componentRoutes;
const byComponent = (components: Record<string, string>) => judgeHealth('/api/v2.0/health', 200, 'application/json', harbor(components), REQUIRED, ROUTES_OF);

it('with the default component routes, a failing registry or registryctl takes the node out of the registry routes only', () => {
  for (const c of ['registry', 'registryctl']) {
    const v = byComponent({ ...all, [c]: 'unhealthy' });
    assert.equal(v.ok, true, c);
    assert.deepEqual(v.routesOut?.routes, ['v2', 'upload'], c);
    assert.match(v.routesOut!.why, new RegExp(`${c}: unhealthy`));
  }
  assert.equal(byComponent(all).routesOut, undefined);
  assert.equal(byComponent({ ...all, jobservice: 'unhealthy' }).routesOut, undefined, 'an unmapped component is ignored');
});

it('with the default component routes, a failing core, database or redis takes the node out altogether', () => {
  for (const c of ['core', 'database', 'redis']) assert.deepEqual(byComponent({ ...all, [c]: 'unhealthy', registry: 'unhealthy' }).ok, false, c);
});
