import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { startRedis } from '../support/redis.js';
import { startServer, type TestServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const basic = (user: string) => `Basic ${Buffer.from(`${user}:pw`).toString('base64')}`;
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

async function nodes(t: { after: (fn: () => unknown) => void }, n: number): Promise<TestServer[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startServer((_q, r) => r.end('ok'))));
  t.after(() => Promise.all(list.map((s) => s.close())));
  return list;
}

async function twoInstances(t: { after: (fn: () => unknown) => void }, urls: string[], redisUrl: string, extra: Record<string, unknown> = {}): Promise<[StartedApp, StartedApp]> {
  const cfg = { sticky: { store: 'redis' as const, redis: { url: redisUrl, keyPrefix: 'test:', timeout: '200ms' }, keys: ['upload' as const, 'session' as const, 'client' as const] }, ...extra };
  const a = await startApp(urls, cfg);
  t.after(() => a.close());
  const b = await startApp(urls, cfg);
  t.after(() => b.close());
  await Promise.all([a, b].map((x) => x.logs.waitFor((l) => l.event === 'redis_connected')));
  return [a, b];
}

/** Where each routing line of a user went, from both instances' logs. */
function nodesOf(user: string, ...apps: StartedApp[]): Set<unknown> {
  return new Set(apps.flatMap((a) => a.logs.requests().filter((l) => (l.client as { user?: string } | undefined)?.user === user).map((l) => l.node)));
}

/** docker login: a token request with Basic auth (the token service vouches for the user), then /v2/. */
const login = async (app: StartedApp, user: string) => {
  assert.equal((await send(`${app.url}/service/token?service=harbor-registry`, { headers: { authorization: basic(user) } })).status, 200);
  return send(`${app.url}/v2/`, { headers: { authorization: basic(user) } });
};

const drain = (app: StartedApp, node: string, on: boolean) => send(`${app.adminUrl}/-/nodes/${node}/${on ? 'drain' : 'undrain'}`, { method: 'POST' });

/** Three simulated Harbor nodes on one storage, each with its own http.secret: an upload continued on another node fails. */
async function nodesWithOwnSecrets(t: { after: (fn: () => unknown) => void }, name: string): Promise<string[]> {
  const tmp = makeTempDir(name);
  t.after(tmp.remove);
  const keys = makeTokenKeyPair(tmp.dir, 'cluster');
  const sims = await Promise.all(
    [0, 1, 2].map((i) => new SimulatedHarborNode({ name: `s${i}`, signingKey: keys.key, storage: join(tmp.dir, 'storage'), httpSecret: `secret-${i}`, realm: 'request' }).start()),
  );
  t.after(() => Promise.all(sims.map((s) => s.close())));
  return sims.map((s) => s.url);
}

/** The Authorization of a push to library/alt: a token from the nodes' token service, through `url`. */
async function pushAuth(url: string): Promise<{ authorization: string }> {
  const q = new URLSearchParams({ service: 'harbor-registry', scope: 'repository:library/alt:pull,push' });
  const tok = await send(`${url}/service/token?${q.toString()}`, { headers: { authorization: `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}` } });
  return { authorization: `Bearer ${(JSON.parse(tok.body.toString()) as { token: string }).token}` };
}

describe('stickiness shared through Redis', () => {
  it('two instances route every user to the node the first one pinned, users spread over nodes', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const [a, b] = await twoInstances(t, (await nodes(t, 3)).map((s) => s.url), redis.url);
    // While a cannot use n1, its pins differ from what b would hash to on its own: b must follow them.
    await drain(a, 'n1', true);
    for (const u of USERS) assert.equal((await login(a, u)).status, 200);
    await a.logs.waitForRequests(2 * USERS.length);
    await drain(a, 'n1', false);
    for (let round = 0; round < 3; round++) {
      for (const u of USERS) {
        for (const app of [b, a]) assert.equal((await send(`${app.url}/v2/x/manifests/${round}`, { headers: { authorization: basic(u) } })).status, 200);
      }
    }
    await b.logs.waitForRequests(USERS.length * 3);
    const used = new Set<unknown>();
    for (const u of USERS) {
      const went = nodesOf(u, a, b);
      assert.equal(went.size, 1, `${u} went to ${[...went].join(', ')}`);
      used.add([...went][0]);
    }
    assert.ok(!used.has('n1'), 'pins made while n1 was drained hold on both instances');
    assert.ok(used.size >= 2, 'users spread over nodes');
    assert.deepEqual(b.logs.requests().filter((l) => l.reason !== 'pinned' || l.affinity !== 'client').map((l) => [l.reason, l.affinity, l.path]), []);
    const status = JSON.parse((await send(`${b.adminUrl}/-/status`)).body.toString()) as { sticky: { store: string; connected: boolean } };
    assert.deepEqual([status.sticky.store, status.sticky.connected], ['redis', true]);
  });

  it('Redis killed mid-run: no failed request, none slower than the Redis timeout; pins resume when it is back', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const [a, b] = await twoInstances(t, (await nodes(t, 3)).map((s) => s.url), redis.url);
    for (const u of USERS.slice(0, 4)) await login(a, u);
    redis.proc.kill('SIGKILL');
    await Promise.all([a, b].map((x) => x.logs.waitFor((l) => l.event === 'redis_down')));
    let n = 0;
    for (let round = 0; round < 5; round++) {
      for (const u of USERS) {
        for (const app of [a, b]) {
          assert.equal((await send(`${app.url}/v2/y/manifests/${round}`, { headers: { authorization: basic(u) } })).status, 200);
          n++;
        }
      }
    }
    const during = [...a.logs.requests(), ...b.logs.requests()].slice(-n);
    const slowest = Math.max(...during.map((l) => Number(l.durationMs)));
    t.diagnostic(`${n} requests while Redis was down, slowest ${slowest} ms`);
    assert.ok(slowest < 200, `a request took ${slowest} ms with Redis down`);
    for (const u of USERS) assert.equal(nodesOf(u, a, b).size, 1, `${u} stays on one node: both instances hash alike`);
    assert.equal(a.logs.lines.filter((l) => l.event === 'redis_down').length, 1, 'warned once per outage, not per request');

    const again = await startRedis(redis.port);
    t.after(() => again.proc.stop());
    await Promise.all([a, b].map((x) => x.logs.waitFor((l) => l.event === 'redis_up')));
    // New pins are shared again: made by a with n2 drained there, followed by b.
    await drain(a, 'n2', true);
    await login(a, 'newcomer');
    await drain(a, 'n2', false);
    await a.logs.waitFor((l) => (l.client as { user?: string } | undefined)?.user === 'newcomer');
    for (let i = 0; i < 3; i++) await send(`${b.url}/v2/`, { headers: { authorization: basic('newcomer') } });
    await b.logs.waitFor((l) => (l.client as { user?: string } | undefined)?.user === 'newcomer');
    assert.equal(nodesOf('newcomer', a, b).size, 1);
  });

  it('Redis down: an upload whose requests land on different request workers stays on its node, and keeps it once Redis is back', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const urls = await nodesWithOwnSecrets(t, 'sticky-outage');
    const lb = await startApp(
      urls,
      { proxy: { workers: 2 }, balance: { policy: 'round-robin' }, sticky: { store: 'redis', redis: { url: redis.url, keyPrefix: 'test:', timeout: '200ms' }, keys: ['upload'] } },
    );
    t.after(() => lb.close());
    await lb.logs.waitFor((l) => l.event === 'redis_connected');
    const auth = await pushAuth(lb.url);
    const blobOf = (i: number) => Buffer.alloc(40_000 + i, i);
    const start = async () => {
      const started = await send(`${lb.url}/v2/library/alt/blobs/uploads/`, { method: 'POST', headers: auth });
      assert.equal(started.status, 202);
      return new URL(String(started.headers.location));
    };
    // Each request on its own connection: the control plane hands them to the two workers in turn.
    const finish = async (i: number, loc: URL) => {
      const blob = blobOf(i);
      const patched = await send(`${lb.url}${loc.pathname}${loc.search}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob });
      assert.equal(patched.status, 202, `upload ${i}: PATCH: ${patched.body.toString()}`);
      const loc2 = new URL(String(patched.headers.location));
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const put = await send(`${lb.url}${loc2.pathname}${loc2.search}&digest=${digest}`, { method: 'PUT', headers: auth });
      assert.equal(put.status, 201, `upload ${i}: PUT: ${put.body.toString()}`);
    };
    redis.proc.kill('SIGKILL');
    await lb.logs.waitFor((l) => l.event === 'redis_down');
    for (let i = 0; i < 6; i++) await finish(i, await start());
    const begun = await start();
    const again = await startRedis(redis.port);
    t.after(() => again.proc.stop());
    await lb.logs.waitFor((l) => l.event === 'redis_up');
    // The pin made during the outage is in Redis now, for other instances too.
    await lb.logs.waitFor((l) => l.event === 'redis_pins_restored', 10_000);
    const look = new Redis(again.url);
    t.after(() => look.quit());
    assert.ok((await look.get(`test:upload:${begun.pathname.split('/').pop()!}`)) !== null);
    await finish(6, begun);
    const uploads = (await lb.logs.waitForRequests(22)).filter((l) => String(l.path).includes('/blobs/uploads/'));
    assert.equal(uploads.length, 21);
    assert.ok(uploads.every((l) => l.status === 202 || l.status === 201), 'every request of every upload answered by its node');
    for (const event of ['redis_connected', 'redis_down', 'redis_up', 'redis_pins_restored']) assert.equal(lb.logs.lines.filter((l) => l.event === event).length, 1, `${event}: said once for the instance, not by each worker`);
  });

  it('connects with a password from the URL and never logs it', async (t) => {
    const redis = await startRedis(undefined, ['--requirepass', 'redis-pass-0123']);
    t.after(() => redis.proc.stop());
    const urls = (await nodes(t, 2)).map((s) => s.url);
    const good = await startApp(urls, { sticky: { store: 'redis', redis: { url: `redis://:redis-pass-0123@127.0.0.1:${redis.port}/0` } } });
    t.after(() => good.close());
    await good.logs.waitFor((l) => l.event === 'redis_connected');
    const bad = await startApp(urls, { sticky: { store: 'redis', redis: { url: `redis://:wrong-pass-0123@127.0.0.1:${redis.port}/0` } } });
    t.after(() => bad.close());
    const down = await bad.logs.waitFor((l) => l.event === 'redis_down');
    assert.match(String(down.reason), /WRONGPASS|invalid/i);
    assert.equal((await send(`${bad.url}/v2/`)).status, 200, 'routing goes on without Redis');
    for (const app of [good, bad]) assert.ok(!/redis-pass-0123|wrong-pass-0123/.test(app.logs.text()), 'no password in the log');
  });

  it('an upload whose requests alternate between instances succeeds although the nodes’ http.secret differ', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const [a, b] = await twoInstances(t, await nodesWithOwnSecrets(t, 'sticky-upload'), redis.url, { balance: { policy: 'round-robin' } });
    const auth = await pushAuth(a.url);
    for (let i = 0; i < 6; i++) {
      const blob = Buffer.alloc(50_000 + i, i);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
      const started = await send(`${first.url}/v2/library/alt/blobs/uploads/`, { method: 'POST', headers: auth });
      assert.equal(started.status, 202);
      const loc = new URL(String(started.headers.location));
      const patched = await send(`${second.url}${loc.pathname}${loc.search}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob });
      assert.equal(patched.status, 202, `upload ${i}: PATCH through the other instance: ${patched.body.toString()}`);
      const loc2 = new URL(String(patched.headers.location));
      const put = await send(`${first.url}${loc2.pathname}${loc2.search}&digest=${digest}`, { method: 'PUT', headers: auth });
      assert.equal(put.status, 201, `upload ${i}: ${put.body.toString()}`);
    }
  });
});
