import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';

const ADMIN_TOKEN = 'admin-host-token-0123456789';
/** Every read the admin listener serves: the status page and its assets, status, metrics, probes. */
const READS = ['/', '/-/status.js', '/-/status.css', '/-/status', '/metrics', '/-/ready', '/-/healthz'];
/** A page on this name, re-pointed at the admin address, is same-origin with the listener to the browser. */
const REBOUND = 'rebind.evil.example:9070';

type After = { after: (fn: () => unknown) => void };
async function start(t: After, admin: Record<string, unknown>): Promise<StartedApp> {
  const lb = await startApp(['http://127.0.0.1:9'], { admin });
  t.after(() => lb.close());
  return lb;
}
const get = async (lb: StartedApp, path: string, headers: Record<string, string>) => {
  const r = await send(`${lb.adminUrl}${path}`, { headers });
  return { status: r.status, error: r.status === 403 ? (JSON.parse(r.body.toString()) as { error: string }).error : undefined };
};

describe('admin listener and DNS rebinding: which Host names it answers', () => {
  it('with admin.token set, refuses every read naming another host unless the request carries the token', async (t) => {
    const lb = await start(t, { token: ADMIN_TOKEN });
    for (const path of READS) {
      const refused = await get(lb, path, { host: REBOUND });
      assert.equal(refused.status, 403, path);
      assert.match(refused.error!, /DNS rebinding/, path);
      assert.match(refused.error!, /IP address/, `${path}: names the fixes`);
      assert.match(refused.error!, /admin\.allowedHosts/, path);
      assert.match(refused.error!, /Authorization: Bearer <admin\.token>/, path);
      assert.equal((await get(lb, path, { host: REBOUND, authorization: 'Bearer not-the-admin-token' })).status, 403, `${path}: a wrong token is no pass`);
      // A browser page cannot send the token cross-site: with it, any name is fine.
      assert.ok([200, 503].includes((await get(lb, path, { host: REBOUND, authorization: `Bearer ${ADMIN_TOKEN}` })).status), `${path} with the token`);
    }
    // Actions with the token still work by name; without it the host check answers first.
    assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/drain`, { method: 'POST', headers: { host: REBOUND } })).status, 403);
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/drain`, { method: 'POST', headers: { host: REBOUND, authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
  });

  it('answers IP literals of any address and localhost without the token (rebinding needs a name), token set or not', async (t) => {
    for (const admin of [{ token: ADMIN_TOKEN }, {}]) {
      const lb = await start(t, admin);
      // A kubelet probe or a Prometheus pod scrape names the pod IP.
      for (const host of ['10.244.1.7:9070', '127.0.0.1', '[fd00::1]:9070', '[::1]', 'localhost:9070', 'LOCALHOST']) {
        for (const path of READS) assert.ok([200, 503].includes((await get(lb, path, { host })).status), `${JSON.stringify(admin)} ${host}${path}`);
      }
      // Names that look like an address, or hide one, are names.
      for (const host of ['127.0.0.1.evil.example', 'localhost.evil.example', 'evil.example@127.0.0.1']) {
        assert.equal((await get(lb, '/-/status', { host })).status, 403, `${JSON.stringify(admin)} ${JSON.stringify(host)}`);
      }
    }
  });

  it('answers names listed in admin.allowedHosts, in any case and with any port; others get the fix without token advice when no token is set', async (t) => {
    for (const admin of [{ token: ADMIN_TOKEN }, {}]) {
      const lb = await start(t, { ...admin, allowedHosts: ['Harbor-LB-Admin.monitoring.svc'] });
      for (const host of ['harbor-lb-admin.monitoring.svc:9070', 'HARBOR-LB-ADMIN.Monitoring.Svc']) {
        for (const path of READS) assert.ok([200, 503].includes((await get(lb, path, { host })).status), `${host}${path}`);
      }
      const refused = await get(lb, '/-/status', { host: 'harbor-lb-admin.evil.example' });
      assert.equal(refused.status, 403);
      assert.match(refused.error!, /admin\.allowedHosts/);
      if (!('token' in admin)) assert.doesNotMatch(refused.error!, /Bearer/, 'no token to send when none is set');
    }
  });
});
