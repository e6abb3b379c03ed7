import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';
import { nodeEvidence, startTrustedSimCluster } from '../support/trusted-cluster.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

type T = { after: (fn: () => unknown) => void };

async function verdicts(lb: StartedApp, node: string): Promise<Record<string, number>> {
  const text = (await send(`${lb.adminUrl}/metrics`)).body.toString();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^harbor_lb_token_verdicts_total\\{node="${node}",verdict="(\\w+)"\\} (\\d+)$`, 'gm'))) out[m[1]!] = Number(m[2]);
  return out;
}

/** Flags, quarantine, failures and state of every node: what a token response must never change. */

/** A harbor-lb with token awareness in front of plain servers (token.rootCert of a throw-away pair). */
async function plainSetup(t: T, handler: Parameters<typeof startServer>[0]): Promise<StartedApp> {
  const tmp = makeTempDir('token-size');
  t.after(tmp.remove);
  const node = await startServer(handler);
  t.after(() => node.close());
  const lb = await startApp([node.url], { token: { rootCert: makeTokenKeyPair(tmp.dir, 'cluster').certFile, probe: { enabled: false } } });
  t.after(() => lb.close());
  return lb;
}

describe('token size is no verdict on a node', () => {
  it('a ~50 KB token of 190 scopes from each node reaches the client: no flag, node state unchanged', async (t) => {
    const { lb } = await startTrustedSimCluster(t, 'token-size');
    const before = nodeEvidence(lb);
    const query = new URLSearchParams({ account: 'admin', service: 'harbor-registry' });
    for (let i = 0; i < 190; i++) query.append('scope', `repository:library/project-${i}-${'x'.repeat(120)}:pull,push`);

    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await send(`${lb.url}/service/token?${query.toString()}`, { headers: { authorization: BASIC } });
      assert.equal(r.status, 200, r.body.toString().slice(0, 200));
      const { token } = JSON.parse(r.body.toString()) as { token: string };
      assert.ok(token.length > 45_000, `token of ${token.length} bytes`);
      tokens.push(token);
    }
    const lines = await lb.logs.waitForRequests(3);
    assert.deepEqual(lines.map((l) => [l.node, l.attempts, l.reason, l.status]), [
      ['n1', 1, 'balanced', 200],
      ['n2', 1, 'balanced', 200],
      ['n3', 1, 'balanced', 200],
    ]);
    const v2 = await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${tokens[0]}` } });
    assert.equal(v2.status, 200, 'the big token works at the registry too');

    assert.deepEqual(nodeEvidence(lb), before);
    for (const n of ['n1', 'n2', 'n3']) assert.deepEqual(await verdicts(lb, n), { good: 1, bad: 0, registry_rejected: 0, suspected: 0, not_verified: 0, not_a_token: 0 }, n);
    assert.ok(!lb.logs.text().includes(tokens[0]!.slice(0, 60)), 'no token in the log');
  });

  it('a 3 MiB token response streams through unverified: counted, logged once, not a node failure', async (t) => {
    const half = 'a'.repeat(1.5 * 1024 * 1024 - 40);
    const body = Buffer.from(JSON.stringify({ token: half, access_token: half, expires_in: 1800 }));
    assert.ok(body.length > 3 * 1024 * 1024 - 100 && body.length <= 3 * 1024 * 1024);
    const lb = await plainSetup(t, (req, res) => {
      if (req.url!.includes('declared')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        return void res.end(body);
      }
      // Chunked, no length: the proxy only finds out while holding it.
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let at = 0; at < body.length; at += 64 * 1024) res.write(body.subarray(at, at + 64 * 1024));
      res.end();
    });
    const before = nodeEvidence(lb);
    for (const how of ['declared', 'chunked']) {
      const r = await send(`${lb.url}/service/token?service=harbor-registry&${how}`);
      assert.equal(r.status, 200, how);
      assert.ok(r.body.equals(body), `${how}: every byte, in order (${r.body.length} of ${body.length})`);
    }
    const lines = await lb.logs.waitForRequests(2);
    assert.deepEqual(lines.map((l) => [l.status, l.attempts, l.bytesOut, l.error]), [
      [200, 1, body.length, undefined],
      [200, 1, body.length, undefined],
    ]);
    assert.deepEqual(nodeEvidence(lb), before);
    assert.equal((await verdicts(lb, 'n1')).not_verified, 2, 'every one counted');
    const logged = lb.logs.lines.filter((l) => l.event === 'token_not_verified');
    assert.equal(logged.length, 1, 'logged once a minute per node');
    assert.deepEqual([logged[0]!.node, logged[0]!.reason], ['n1', 'response-too-large']);
  });

  it('asks the node for identity encoding; a node that compresses anyway is passed through unverified', async (t) => {
    const json = Buffer.from(JSON.stringify({ token: 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln', access_token: '', expires_in: 1800 }));
    const asked: Array<string | undefined> = [];
    const lb = await plainSetup(t, (req, res) => {
      asked.push(req.headers['accept-encoding']);
      const gz = gzipSync(json);
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length });
      res.end(gz);
    });
    const before = nodeEvidence(lb);
    const r = await send(`${lb.url}/service/token?service=harbor-registry`, { headers: { 'accept-encoding': 'gzip, br' } });
    assert.deepEqual(asked, ['identity'], 'the client accepts gzip, the node is asked for identity');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(r.body).equals(json), 'passed on as the node sent it');
    assert.deepEqual(nodeEvidence(lb), before);
    const v = await verdicts(lb, 'n1');
    assert.deepEqual([v.not_verified, v.bad, v.not_a_token], [1, 0, 0]);
    const line = await lb.logs.waitFor((l) => l.event === 'token_not_verified');
    assert.deepEqual([line.node, line.reason, line.detail], ['n1', 'response-encoded', 'content-encoding gzip']);
  });
});
