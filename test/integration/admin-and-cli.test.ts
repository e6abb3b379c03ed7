import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { startApp } from '../support/app.js';
import { fetchBlockedPort, freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('admin API', () => {
  it('answers healthz, ready and status on its own listener', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    assert.notEqual(new URL(lb.adminUrl).port, new URL(lb.url).port);
    const admin = request(lb.adminUrl);
    await admin.get('/-/healthz').expect(200);
    await admin.get('/-/ready').expect(200);
    await request(lb.url).get('/v2/').expect(200, 'ok');
    const { body: status } = await admin.get('/-/status').expect(200).expect('content-type', /^application\/json/);
    assert.equal(status.nodes.length, 1);
    const n = status.nodes[0];
    assert.equal(n.name, 'n1');
    assert.equal(n.url, node.url);
    assert.equal(n.state, 'unknown');
    assert.deepEqual(n.flags, []);
    assert.equal(n.inflight, 0);
    assert.equal(n.requests, 1);
    assert.deepEqual(status.sticky, { store: 'memory', connected: true, entries: 0 });
    const { text: metrics } = await admin.get('/metrics').expect(200).expect('content-type', /^text\/plain/);
    assert.match(metrics, /^harbor_lb_node_requests_total\{node="n1"\} 1$/m);
    assert.match(metrics, /^harbor_lb_node_state\{node="n1",state="unknown"\} 1$/m);
    assert.match(metrics, /^harbor_lb_node_inflight\{node="n1"\} 0$/m);
    // The traffic port forwards /-/ paths to the nodes; admin is never served there.
    await request(lb.url).get('/-/status').expect(200, 'ok');
  });
});

describe('draining', () => {
  it('needs the admin token, sends no new requests to a drained node, and takes it back on undrain', async (t) => {
    const nodes = await Promise.all([1, 2].map(() => startServer((_q, r) => r.end('ok'))));
    const lb = await startApp(
      nodes.map((n) => n.url),
      { admin: { token: 'admin-token-0123456789' } },
    );
    t.after(async () => {
      await lb.close();
      await Promise.all(nodes.map((n) => n.close()));
    });
    const admin = request(lb.adminUrl);
    const TOKEN = 'Bearer admin-token-0123456789';
    await admin.post('/-/nodes/n1/drain').expect(401);
    await admin.post('/-/nodes/n1/drain').set('authorization', 'Bearer admin-token-wrong-guess').expect(401);
    await admin.post('/-/nodes/n1/drain').set('authorization', TOKEN).expect(200, { node: 'n1', state: 'draining' });
    await admin.post('/-/nodes/nope/drain').set('authorization', TOKEN).expect(404);

    for (let i = 0; i < 20; i++) await request(lb.url).get(`/v2/a/manifests/${i}`).expect(200);
    assert.deepEqual([...new Set(lb.logs.requests().map((l) => l.node))], ['n2']);
    const change = await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'draining');
    assert.equal(change.node, 'n1');

    await admin.post('/-/nodes/n1/undrain').set('authorization', TOKEN).expect(200);
    assert.equal(lb.app.nodes.get('n1')!.state, 'unknown', 'back to what health checking says (not checked here)');
    for (let i = 0; i < 40; i++) await request(lb.url).get(`/v2/b/manifests/${i}`).expect(200);
    assert.ok(lb.logs.requests().slice(20).some((l) => l.node === 'n1'));
    assert.ok(!lb.logs.text().includes('admin-token-0123456789'), 'the admin token never reaches the log');
  });
});

describe('command line', () => {
  it('refuses an invalid config with exit code 2, naming the field', async (t) => {
    const tmp = makeTempDir('cli');
    t.after(tmp.remove);
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, 'nodes:\n  - {name: n1, url: "http://127.0.0.1:1"}\n  - {name: n2, url: "ftp://x"}\nhealth: {interval: soon}\n');
    const r = await runCli(['serve', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nodes\[1\]\.url: expected an http\(s\) URL/);
    assert.match(r.stderr, /health\.interval: expected a duration such as "5s", got "soon"/);
  });

  it('serves with a config file, prints status as a table (the admin API on a port fetch refuses) and stops on SIGTERM', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    t.after(() => node.close());
    const tmp = makeTempDir('cli');
    t.after(tmp.remove);
    // An operator may put the admin API on any port: `status` must reach 10080 or 6000 too.
    const [port, adminPort] = [await freePort(), await fetchBlockedPort()];
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, `listen: {address: 127.0.0.1, port: ${port}}\nnodes:\n  - {name: alpha, url: "${node.url}"}\nadmin: {address: 127.0.0.1, port: ${adminPort}}\n`);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    t.after(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        // Health checks are on by default: the first one decides the node's state.
        if (out.includes('"event":"listening"') && out.includes('"event":"node_state"')) resolve();
      });
      child.once('exit', () => reject(new Error(`serve exited early: ${out}`)));
    });
    await request(`http://127.0.0.1:${port}`).get('/').expect(200, 'ok');
    const status = await runCli(['status', '--admin', `http://127.0.0.1:${adminPort}`]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^NODE\s+STATE\s+INFLIGHT/m);
    assert.match(status.stdout, /^alpha\s+healthy\s+0\s+1\s+0\s+-\s+http:\/\/127\.0\.0\.1:\d+$/m);
    // Regression of issue 9: a malformed admin path threw URIError in the listener and the process exited.
    const admin = request(`http://127.0.0.1:${adminPort}`);
    for (const path of ['/-/nodes/%E0/drain', '/-/nodes/%/drain', '/-/nodes/%C0%AF/undrain']) await admin.post(path).expect(400);
    assert.equal(child.exitCode, null, 'the process is alive');
    await admin.get('/-/healthz').expect(200);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  it('says so when the admin API cannot be reached', async () => {
    const r = await runCli(['status', '--admin', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the admin API/);
  });
});
