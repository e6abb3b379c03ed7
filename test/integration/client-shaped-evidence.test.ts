import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { rawRequest } from '../support/raw-http.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';
import { nodeEvidence } from '../support/trusted-cluster.js';

/**
 * Issue 18: shapes of client traffic that convicted healthy nodes on the main of 2026-12-04.
 * Every node here is healthy and shares the cluster key; harbor-lb runs its probe on demand
 * (periodic rounds off) and round robin, so three requests in a row reach every node.
 */
type T = { after: (fn: () => unknown) => void };

async function healthyCluster(t: T, anyService = false): Promise<StartedApp> {
  const tmp = makeTempDir('client-shaped');
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, ['none', 'none', 'none'], { tokenAnyService: anyService, realm: 'request' });
  t.after(() => sim.close());
  const lb = await startApp(sim.nodes.map((n) => n.url), {
    balance: { policy: 'round-robin' },
    token: { rootCert: sim.cluster.certFile, probe: { enabled: false } },
  });
  t.after(() => lb.close());
  return lb;
}

const tokenOf = async (lb: StartedApp, query = 'service=harbor-registry&scope=repository%3Alibrary%2Fa%3Apull'): Promise<string> => {
  const r = await send(`${lb.url}/service/token?${query}`);
  assert.equal(r.status, 200, r.body.toString());
  return (JSON.parse(r.body.toString()) as { token: string }).token;
};

/** Whatever on-demand probes the requests asked for have run and been judged. */
async function probesSettled(lb: StartedApp): Promise<void> {
  for (const n of lb.app.nodes.all) await lb.app.trustProbe!.probeNode(n);
}

describe('client traffic never convicts a healthy node (issue 18)', () => {
  it('a valid token with a trailing 0xA0 (harbor-lb trimmed it, the registry did not): 401 passed on, no node suspected, flagged or quarantined', async (t) => {
    const lb = await healthyCluster(t);
    const before = nodeEvidence(lb);
    const token = await tokenOf(lb);
    for (let i = 0; i < 6; i++) {
      const r = await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}\u00a0` } });
      assert.equal(r.status, 401, 'the registry refuses what it was sent');
      const line = lb.logs.requests().at(-1)!;
      assert.equal(line.attempts, 1, 'not retried on other nodes: harbor-lb did not read a token in it');
    }
    assert.equal((await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the same token, sent as it is, works');
    await probesSettled(lb);
    assert.deepEqual(nodeEvidence(lb), before);
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_suspected').length, 0);
  });

  it('token requests for a made-up service (a token service copying it into aud): reissued, probed, never flagged TOKEN_CLAIMS_REJECTED', async (t) => {
    const lb = await healthyCluster(t, true);
    const before = nodeEvidence(lb);
    for (let i = 0; i < 6; i++) {
      const r = await send(`${lb.url}/service/token?service=made-up-${i}&scope=repository%3Alibrary%2Fa%3Apull`);
      assert.equal(r.status, 200, 'the client gets what it asked for in the end');
    }
    await probesSettled(lb);
    assert.deepEqual(nodeEvidence(lb), before, 'the probe asks with the configured service: every node passes');
    assert.ok(lb.logs.lines.some((l) => l.event === 'node_suspected' && l.cause === 'token'), 'traffic raised suspicion');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_flag' && l.code === 'TOKEN_CLAIMS_REJECTED').length, 0);
  });

  it('two Authorization headers, or two values of the session cookie: 400 before any node, nothing recorded', async (t) => {
    const lb = await healthyCluster(t);
    const before = nodeEvidence(lb);
    const token = await tokenOf(lb);
    const twoAuth = await rawRequest(lb.url, `GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer a.b.c\r\nConnection: close\r\n\r\n`);
    assert.equal(twoAuth.status, 400);
    assert.match(twoAuth.body, /more than one Authorization header/);
    const twoSessions = await send(`${lb.url}/api/v2.0/projects`, { headers: { cookie: 'sid=aaa; lang=en; sid=bbb' } });
    assert.equal(twoSessions.status, 400);
    assert.match(twoSessions.body.toString(), /two different values of the session cookie/);
    const lines = lb.logs.requests().slice(-2);
    assert.deepEqual(lines.map((l) => [l.status, l.node, l.error]), [
      [400, null, 'REQUEST_NOT_FORWARDABLE'],
      [400, null, 'REQUEST_NOT_FORWARDABLE'],
    ]);
    assert.equal((await send(`${lb.url}/api/v2.0/projects`, { headers: { cookie: 'sid=aaa; lang=en; sid=aaa' } })).status, 404, 'the same value twice is forwarded');
    assert.deepEqual(nodeEvidence(lb), before);
  });
});
