import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { send } from '../support/http-client.js';
import { FakeClock } from '../support/fake-clock.js';
import { startFromFile } from '../support/file-app.js';
import { startServer, type TestServer } from '../support/servers.js';
import { makeServerCert } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';

const BLOB = Buffer.alloc(16 * 1024 * 1024, 'harbor-lb');
const BLOB_DIGEST = createHash('sha256').update(BLOB).digest('hex');
const TOKEN = 'reload-admin-token-0123456789';

/** A registry-shaped node that says who it is on every answer: uploads, a large blob, /v2/. */
async function registryNode(name: string): Promise<TestServer & { uploads: Map<string, number> }> {
  const uploads = new Map<string, number>();
  let seq = 0;
  const node = await startServer((req, res) => {
    const url = req.url ?? '/';
    const done = (status: number, headers: http.OutgoingHttpHeaders = {}, body = '') => {
      res.writeHead(status, { 'x-node': name, 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    if (req.method === 'POST' && url === '/v2/lib/app/blobs/uploads/') {
      const uuid = `${name}-${++seq}`;
      uploads.set(uuid, 0);
      return done(202, { location: `/v2/lib/app/blobs/uploads/${uuid}`, 'docker-upload-uuid': uuid, range: '0-0' });
    }
    const upload = /^\/v2\/lib\/app\/blobs\/uploads\/([^?]+)/.exec(url);
    if (upload && (req.method === 'PATCH' || req.method === 'PUT')) {
      const uuid = upload[1]!;
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => {
        // Only the node that started the upload knows it, as with a registry's upload state.
        if (!uploads.has(uuid)) return done(404, { 'content-type': 'application/json' }, '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}');
        uploads.set(uuid, uploads.get(uuid)! + n);
        done(req.method === 'PATCH' ? 202 : 201, { location: `/v2/lib/app/blobs/uploads/${uuid}` });
      });
      return;
    }
    if (req.method === 'GET' && url === '/v2/lib/app/blobs/big') {
      res.writeHead(200, { 'x-node': name, 'content-length': BLOB.length, 'content-type': 'application/octet-stream' });
      // In 64 KiB writes with backpressure: a paused client keeps the response in flight.
      let at = 0;
      const pump = () => {
        while (at < BLOB.length) {
          const chunk = BLOB.subarray(at, at + 65536);
          at += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    done(200, { 'content-type': 'application/json' }, '{}');
  });
  return Object.assign(node, { uploads });
}

/** A GET whose body is read only when the test says so: in flight across whatever happens meanwhile. */
function pausedPull(url: string): Promise<{ node: string; resume(): Promise<{ bytes: number; digest: string }> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.pause();
      const hash = createHash('sha256');
      let bytes = 0;
      resolve({
        node: String(res.headers['x-node']),
        resume: () =>
          new Promise((ok, fail) => {
            res.on('data', (c: Buffer) => {
              bytes += c.length;
              hash.update(c);
            });
            res.on('end', () => ok({ bytes, digest: hash.digest('hex') }));
            res.on('error', fail);
            res.resume();
          }),
      });
    });
    req.on('error', reject);
  });
}

function configYaml(nodes: Array<{ name: string; url: string }>, extra = ''): string {
  return [
    'listen: {address: 127.0.0.1, port: 0}',
    `admin: {address: 127.0.0.1, port: 0, token: ${TOKEN}}`,
    'nodes:',
    ...nodes.map((n) => `  - {name: ${n.name}, url: "${n.url}"}`),
    'health: {enabled: false}',
    "sticky: {keys: [upload], ttl: {upload: 30s}}",
    'log: {level: info}',
    extra,
  ].join('\n');
}

const reloadVia = (adminUrl: string, token?: string) =>
  send(`${adminUrl}/-/reload`, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

describe('config reload', () => {
  it('adds and removes nodes under load without losing a request: pulls finish, a pinned upload completes on the removed node', async (t) => {
    const tmp = makeTempDir('reload');
    const [a, b, c] = await Promise.all([registryNode('n1'), registryNode('n2'), registryNode('n3')]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, configYaml([{ name: 'n1', url: a.url }, { name: 'n2', url: b.url }]));
    const clock = new FakeClock(Date.now());
    const { app, logs, proxyUrl, adminUrl } = await startFromFile(file, { clock });
    t.after(async () => {
      await app.close(0);
      await Promise.all([a.close(), b.close(), c.close()]);
      tmp.remove();
    });

    // An upload begins: its node is the one the reload removes.
    const started = await send(`${proxyUrl}/v2/lib/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    const removed = String(started.headers['x-node']);
    const kept = removed === 'n1' ? { name: 'n2', url: b.url } : { name: 'n1', url: a.url };
    const location = String(started.headers.location);
    const first = await send(`${proxyUrl}${location}`, { method: 'PATCH', body: Buffer.alloc(1 << 20, 1) });
    assert.equal(first.status, 202);
    // Pulls in flight on both nodes, paused mid-body.
    const pulls = await Promise.all(Array.from({ length: 4 }, () => pausedPull(`${proxyUrl}/v2/lib/app/blobs/big`)));

    writeFileSync(file, configYaml([kept, { name: 'n3', url: c.url }]));
    assert.equal((await reloadVia(adminUrl)).status, 401, 'reload is an action: it needs the admin token');
    const reloaded = await reloadVia(adminUrl, TOKEN);
    assert.equal(reloaded.status, 200, reloaded.body.toString());
    const result = JSON.parse(reloaded.body.toString()) as { ok: boolean; generation: number; nodes: { added: string[]; removed: string[] } };
    assert.equal(result.ok, true);
    assert.equal(result.generation, 2);
    assert.deepEqual(result.nodes.added, ['n3']);
    assert.deepEqual(result.nodes.removed, [removed]);

    const status = JSON.parse((await send(`${adminUrl}/-/status`)).body.toString()) as {
      nodes: Array<{ name: string; state: string; removed: boolean }>;
      config: { generation: number; lastReload: { ok: boolean } };
    };
    assert.equal(status.config.generation, 2);
    assert.equal(status.config.lastReload.ok, true);
    const gone = status.nodes.find((n) => n.name === removed)!;
    assert.equal(gone.state, 'draining');
    assert.equal(gone.removed, true);
    assert.ok(status.nodes.some((n) => n.name === 'n3'));

    // The upload finishes where it began, on the removed node.
    const second = await send(`${proxyUrl}${location}`, { method: 'PATCH', body: Buffer.alloc(1 << 20, 2) });
    assert.equal(second.status, 202);
    assert.equal(second.headers['x-node'], removed);
    const put = await send(`${proxyUrl}${location}?digest=sha256:x`, { method: 'PUT' });
    assert.equal(put.status, 201);
    assert.equal(put.headers['x-node'], removed);
    const removedNode = removed === 'n1' ? a : b;
    assert.equal([...removedNode.uploads.values()][0], 2 << 20, 'every byte of the upload reached its node');

    // Every pull in flight completes, whole.
    assert.deepEqual(new Set(pulls.map((p) => p.node)), new Set(['n1', 'n2']), 'pulls were in flight on both nodes, the removed one included');
    for (const p of pulls) assert.deepEqual(await p.resume(), { bytes: BLOB.length, digest: BLOB_DIGEST });

    // New requests: never the removed node; the added one takes its share.
    const seen = new Map<string, number>();
    for (let i = 0; i < 24; i++) {
      const r = await send(`${proxyUrl}/v2/`);
      assert.equal(r.status, 200);
      const n = String(r.headers['x-node']);
      seen.set(n, (seen.get(n) ?? 0) + 1);
    }
    assert.equal(seen.get(removed), undefined, `nothing new reaches the removed node: ${[...seen].join()}`);
    assert.ok((seen.get('n3') ?? 0) > 0, `the added node takes traffic: ${[...seen].join()}`);

    // Idle for removeAfterIdle (the upload TTL here, 30 s), the removed node leaves the set.
    const left = logs.waitFor((l) => l.event === 'node_removed' && l.node === removed, 5000, 'node_removed');
    clock.advance(31_000);
    await left;
    const after = JSON.parse((await send(`${adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string }> };
    assert.deepEqual(after.nodes.map((n) => n.name).sort(), [kept.name, 'n3'].sort());
    assert.ok(logs.lines.some((l) => l.event === 'config_reloaded' && l.generation === 2));
  });

  it('refuses an invalid file whole, naming the field, and the old config keeps serving', async (t) => {
    const tmp = makeTempDir('reload-bad');
    const [a, b] = await Promise.all([registryNode('n1'), registryNode('n2')]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, configYaml([{ name: 'n1', url: a.url }]));
    const { app, logs, proxyUrl, adminUrl } = await startFromFile(file);
    t.after(async () => {
      await app.close(0);
      await Promise.all([a.close(), b.close()]);
      tmp.remove();
    });
    // A valid node list plus one bad field: nothing of it may apply.
    writeFileSync(file, configYaml([{ name: 'n1', url: a.url }, { name: 'n2', url: b.url }], 'balance: {retries: {attempts: 0}}'));
    const refused = await reloadVia(adminUrl, TOKEN);
    assert.equal(refused.status, 422);
    const body = JSON.parse(refused.body.toString()) as { ok: boolean; generation: number; problems: string[] };
    assert.equal(body.ok, false);
    assert.equal(body.generation, 1);
    assert.ok(body.problems.some((p) => p.startsWith('balance.retries.attempts:')), body.problems.join('\n'));
    assert.deepEqual(app.nodes.all.map((n) => n.name), ['n1'], 'the valid part was not applied either');
    const line = logs.lines.find((l) => l.event === 'config_reload_failed');
    assert.ok(line, 'one log line says the reload was refused');
    const status = JSON.parse((await send(`${adminUrl}/-/status`)).body.toString()) as { config: { generation: number; lastReload: { ok: boolean; problems: string[] } } };
    assert.equal(status.config.generation, 1);
    assert.equal(status.config.lastReload.ok, false);
    assert.ok(status.config.lastReload.problems[0]!.startsWith('balance.retries.attempts:'));
    const still = await send(`${proxyUrl}/v2/`);
    assert.equal(still.status, 200);
    assert.equal(still.headers['x-node'], 'n1');

    // A file that is not even YAML, and one that is gone.
    writeFileSync(file, 'nodes: [');
    assert.equal((await reloadVia(adminUrl, TOKEN)).status, 422);
    tmp.remove();
    const missing = JSON.parse((await reloadVia(adminUrl, TOKEN)).body.toString()) as { problems: string[] };
    assert.match(missing.problems[0]!, /cannot read the file/);
    assert.equal((await send(`${proxyUrl}/v2/`)).status, 200);
  });

  it('applies what it can and reports, never ignores, what needs a restart', async (t) => {
    const tmp = makeTempDir('reload-restart');
    const a = await registryNode('n1');
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, configYaml([{ name: 'n1', url: a.url }]));
    const { app, logs, proxyUrl, adminUrl } = await startFromFile(file);
    t.after(async () => {
      await app.close(0);
      await a.close();
      tmp.remove();
    });
    writeFileSync(file, configYaml([{ name: 'n1', url: a.url }], 'limits: {requestsPerClient: 7}').replace('log: {level: info}', 'log: {level: warn}'));
    const r = app.reload();
    assert.equal(r.ok, true);
    assert.ok(r.ok && r.restartNeeded.includes('limits.requestsPerClient'), JSON.stringify(r));
    assert.ok(r.ok && r.applied.includes('log.level'));
    assert.equal(app.config.limits.requestsPerClient, 128, 'the value in force is the one the process runs with');
    assert.equal(app.config.log.level, 'warn');
    const line = logs.lines.find((l) => l.event === 'config_reloaded');
    assert.equal(line?.level, 'warn', 'a reload that leaves settings for a restart is a warning');
    assert.deepEqual(line?.restartNeeded, ['limits.requestsPerClient']);
    // Log level applied: routing lines (info) stop.
    const before = logs.lines.filter((l) => l.route !== undefined).length;
    assert.equal((await send(`${proxyUrl}/v2/`)).status, 200);
    assert.equal(logs.lines.filter((l) => l.route !== undefined).length, before);
    const status = JSON.parse((await send(`${adminUrl}/-/status`)).body.toString()) as { config: { restartNeeded: string[] } };
    assert.deepEqual(status.config.restartNeeded, ['limits.requestsPerClient']);
  });

  it('reads the TLS certificate again on every reload (renewed in place), and refuses a key that does not match it', async (t) => {
    const tmp = makeTempDir('reload-tls');
    const node = await registryNode('n1');
    const [dirA, dirB] = ['a', 'b'].map((d) => {
      mkdirSync(join(tmp.dir, d));
      return join(tmp.dir, d);
    });
    const a = makeServerCert(dirA!);
    const b = makeServerCert(dirB!);
    const live = { cert: join(tmp.dir, 'server.crt'), key: join(tmp.dir, 'server.key') };
    copyFileSync(a.certFile, live.cert);
    copyFileSync(a.keyFile, live.key);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const yaml = (key: string) => configYaml([{ name: 'n1', url: node.url }]).replace('listen: {address: 127.0.0.1, port: 0}', `listen: {address: 127.0.0.1, port: 0, tls: {cert: ${live.cert}, key: ${key}}}`);
    writeFileSync(file, yaml(live.key));
    const { app, proxyPort } = await startFromFile(file);
    t.after(async () => {
      await app.close(0);
      await node.close();
      tmp.remove();
    });
    const presented = (ca: string) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: proxyPort, ca: readFileSync(ca), servername: 'localhost' }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.end();
        });
        s.on('error', reject);
      });
    const first = await presented(a.caFile);

    // The key of another certificate: refused whole, naming the field; the process lives on.
    writeFileSync(file, yaml(b.keyFile));
    const refused = app.reload();
    assert.equal(refused.ok, false);
    assert.ok(!refused.ok && refused.problems[0]!.startsWith('listen.tls.key:'), JSON.stringify(refused));
    assert.equal(await presented(a.caFile), first);

    // cert-manager style: new files under the same paths, the config itself unchanged.
    writeFileSync(file, yaml(live.key));
    copyFileSync(b.certFile, live.cert);
    copyFileSync(b.keyFile, live.key);
    const renewed = app.reload();
    assert.ok(renewed.ok, JSON.stringify(renewed));
    assert.deepEqual(renewed.ok && renewed.applied, []);
    const second = await presented(b.caFile);
    assert.notEqual(second, first, 'new connections get the renewed certificate');
  });

  it('turning active checks off by reload clears their verdicts: a node they held out comes back', async (t) => {
    const tmp = makeTempDir('reload-checks');
    const [a, b] = await Promise.all([registryNode('n1'), registryNode('n2')]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const yaml = (health: string) => configYaml([{ name: 'n1', url: a.url }, { name: 'n2', url: b.url }]).replace('health: {enabled: false}', health);
    writeFileSync(file, yaml('health: {enabled: true, interval: 1h}'));
    const probe = async (n: { name: string }) => (n.name === 'n2' ? { ok: false, detail: 'registry: unhealthy' } : { ok: true, detail: 'ok' });
    const { app } = await startFromFile(file, { healthProbe: probe });
    t.after(async () => {
      await app.close(0);
      await Promise.all([a.close(), b.close()]);
      tmp.remove();
    });
    const n2 = app.nodes.get('n2')!;
    for (let i = 0; i < 10_000 && n2.state === 'unknown'; i++) await new Promise((r) => setImmediate(r));
    assert.equal(n2.state, 'unhealthy');
    writeFileSync(file, yaml('health: {enabled: false}'));
    assert.ok(app.reload().ok);
    assert.equal(n2.state, 'unknown');
    assert.deepEqual(app.nodes.available().map((n) => n.name), ['n1', 'n2']);
  });
});
