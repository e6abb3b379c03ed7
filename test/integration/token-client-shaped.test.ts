import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/token/libtrust.js';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';
import { nodeEvidence, startTrustedSimCluster } from '../support/trusted-cluster.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

/** Flags, quarantine, failures and state of every node: what a client's input must never change. */

function sign(key: KeyObject, claims: { sub?: string; kid?: string; exp?: number; padding?: number }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ access: [], ...(claims.padding ? { padding: 'p'.repeat(claims.padding) } : {}) })
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: claims.kid ?? libtrustKeyId(createPublicKey(key)) })
    .setIssuer('harbor-token-issuer')
    .setAudience('harbor-registry')
    .setIssuedAt(now)
    .setNotBefore(now - 3600)
    .setExpirationTime(claims.exp ?? now + 1800);
  if (claims.sub) jwt.setSubject(claims.sub);
  return jwt.sign(key);
}

describe('what a client shapes never flags a node', () => {
  it('garbage and foreign bearer tokens at /v2/: 401 passed on, no flag, and the log does not present their user as fact', async (t) => {
    const { sim, lb } = await startTrustedSimCluster(t, 'client-shaped');
    const before = nodeEvidence(lb);
    const clusterKid = libtrustKeyId(createPublicKey(sim.cluster.key));

    const tok = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: BASIC } });
    const good = (JSON.parse(tok.body.toString()) as { token: string }).token;
    assert.equal((await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${good}` } })).status, 200);

    const made = {
      garbage: 'garbage',
      dots: 'a.b.c',
      foreignKey: await sign(sim.foreign.key, { sub: 'mallory' }),
      claimsClusterKid: await sign(sim.foreign.key, { sub: 'admin', kid: clusterKid }),
      expired: await sign(sim.cluster.key, { sub: 'admin', exp: Math.floor(Date.now() / 1000) - 3600 }),
      big: await sign(sim.foreign.key, { sub: 'mallory', kid: clusterKid, padding: 45_000 }),
    };
    for (const [what, token] of Object.entries(made)) {
      // Round robin: three in a row reach every node.
      for (let i = 0; i < 3; i++) {
        const r = await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 401, `${what}: the node's refusal reaches the client`);
      }
    }
    assert.deepEqual(nodeEvidence(lb), before, 'no flag, no quarantine, no failure on any node');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_flag').length, 0);

    const lines = await lb.logs.waitForRequests(2 + 3 * Object.keys(made).length);
    const clients = lines.map((l) => l.client as { user?: string; userFrom?: string });
    assert.deepEqual(clients[0], { ip: '127.0.0.1', user: 'admin', userFrom: 'basic' });
    assert.deepEqual(clients[1], { ip: '127.0.0.1', user: 'admin', userFrom: 'token' }, 'a token the proxy verified');
    const later = clients.slice(2);
    assert.ok(later.every((c) => c.user === undefined || c.userFrom === 'unverified-token'), JSON.stringify(later));
    assert.ok(later.some((c) => c.user === 'mallory'), 'the name is kept, marked as unverified');
    assert.ok(later.filter((c) => c.user === 'admin').length === 6, 'a forged admin is never shown as the verified admin');
    assert.ok(!lb.logs.text().includes(made.foreignKey.slice(0, 60)), 'no token in the log');
  });

  it('a token endpoint answering null, an array or a string: the client gets the node answer, no 500, no flag', async (t) => {
    const tmp = makeTempDir('client-shaped');
    t.after(tmp.remove);
    const bodies: Record<string, string> = { null: 'null', array: '[{"token":"x"}]', string: '"eyJ.a.b"' };
    const node = await startServer((req, res) => {
      const body = bodies[new URL(req.url!, 'http://n').searchParams.get('as')!]!;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { token: { rootCert: makeTokenKeyPair(tmp.dir, 'cluster').certFile, probe: { enabled: false } } });
    t.after(() => lb.close());
    const before = nodeEvidence(lb);
    for (const [as, body] of Object.entries(bodies)) {
      const r = await send(`${lb.url}/service/token?service=harbor-registry&as=${as}`);
      assert.deepEqual([r.status, r.body.toString()], [200, body], as);
    }
    assert.deepEqual(nodeEvidence(lb), before);
    const metrics = (await send(`${lb.adminUrl}/metrics`)).body.toString();
    assert.match(metrics, /^harbor_lb_token_verdicts_total\{node="n1",verdict="not_a_token"\} 3$/m);
    assert.match(metrics, /^harbor_lb_token_verdicts_total\{node="n1",verdict="bad"\} 0$/m);
    const logged = lb.logs.lines.filter((l) => l.event === 'token_not_a_token');
    assert.deepEqual(logged.map((l) => [l.node, l.source]), [['n1', 'traffic']], 'logged once a minute per node');
  });
});
