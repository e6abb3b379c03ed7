import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { startRedis } from '../support/redis.js';
import { makeTempDir } from '../support/tmp.js';

type T = { after: (fn: () => unknown) => void };
const REPO = 'library/flood';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
/** Each space holds this many pins: a flood that wrote client pins would overflow it 60 times. */
const MAX_ENTRIES = 50;
const USERS = { admin: 'Harbor12345', mallory: 'mallory-pw' };

/** Three nodes on one storage, each with its own http.secret: an upload works only on the node that began it. */
async function cluster(t: T, store: 'memory' | 'redis'): Promise<{ lb: StartedApp; redis?: Redis }> {
  const tmp = makeTempDir('pin-flood');
  t.after(tmp.remove);
  const keys = makeTokenKeyPair(tmp.dir, 'cluster');
  const sims = await Promise.all(
    [0, 1, 2].map((i) => new SimulatedHarborNode({ name: `h${i}`, signingKey: keys.key, storage: join(tmp.dir, 'storage'), httpSecret: `secret-${i}`, realm: 'request', users: USERS }).start()),
  );
  t.after(() => Promise.all(sims.map((s) => s.close())));
  let redis: Redis | undefined;
  let sticky: Record<string, unknown> = { keys: ['upload', 'session', 'client'], maxEntries: MAX_ENTRIES };
  if (store === 'redis') {
    const server = await startRedis();
    t.after(() => server.proc.stop());
    sticky = { ...sticky, store: 'redis', redis: { url: server.url, keyPrefix: 'flood:', timeout: '500ms' } };
    redis = new Redis(server.url);
    t.after(() => redis!.quit());
  }
  const lb = await startApp(
    sims.map((s) => s.url),
    { balance: { policy: 'round-robin' }, token: { rootCert: keys.certFile, probe: { enabled: false } }, sticky },
  );
  t.after(() => lb.close());
  if (store === 'redis') await lb.logs.waitFor((l) => l.event === 'redis_connected');
  return { lb, redis };
}

/** A GET from a chosen loopback source address over a keep-alive agent. */
function getFrom(url: string, headers: http.OutgoingHttpHeaders, agent: http.Agent, localAddress = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent, localAddress }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
      .on('error', reject);
  });
}

/** An upload's POST from a chosen loopback source address: 202 from the node. */
function postFrom(url: string, headers: http.OutgoingHttpHeaders, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .request(url, { method: 'POST', headers, localAddress, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
      .on('error', reject)
      .end();
  });
}

async function tokenFor(lb: StartedApp, user: keyof typeof USERS = 'admin'): Promise<string> {
  const q = new URLSearchParams({ service: 'harbor-registry', scope: `repository:${REPO}:pull,push` });
  const r = await send(`${lb.url}/service/token?${q.toString()}`, { headers: { authorization: basic(user, USERS[user]) } });
  assert.equal(r.status, 200);
  return (JSON.parse(r.body.toString()) as { token: string }).token;
}

async function evictions(lb: StartedApp): Promise<Record<string, number>> {
  const text = (await send(`${lb.adminUrl}/metrics`)).body.toString();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^harbor_lb_pin_evictions_total\{store="\w+",space="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Begins `n` uploads; returns their Locations. */
async function beginUploads(lb: StartedApp, auth: Record<string, string>, n: number): Promise<string[]> {
  const locations: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await send(`${lb.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(r.status, 202);
    const loc = new URL(String(r.headers.location));
    locations.push(`${loc.pathname}${loc.search}`);
  }
  return locations;
}

/** Sends each upload's body and commits it: the statuses, 201 for every upload whose requests stayed on its node. */
async function finishUploads(lb: StartedApp, auth: Record<string, string>, locations: string[]): Promise<number[]> {
  const statuses: number[] = [];
  for (const [i, location] of locations.entries()) {
    const blob = Buffer.alloc(10_000 + i, i);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const patched = await send(`${lb.url}${location}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob });
    if (patched.status !== 202) {
      statuses.push(patched.status);
      continue;
    }
    const loc = new URL(String(patched.headers.location));
    statuses.push((await send(`${lb.url}${loc.pathname}${loc.search}&digest=${digest}`, { method: 'PUT', headers: auth })).status);
  }
  return statuses;
}

describe('pins come from evidence; real work outranks guesses (issue 18)', () => {
  for (const store of ['memory', 'redis'] as const) {
    it(`${store}: 20 uploads on nodes with different http.secret survive 3000 made-up logins from one address; no pin, no Redis key for a refused login`, async (t) => {
      const { lb, redis } = await cluster(t, store);
      const auth = { authorization: `Bearer ${await tokenFor(lb)}` };
      const locations = await beginUploads(lb, auth, 20);
      const keysBefore = await redis?.dbsize();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      t.after(() => agent.destroy());
      const q = new URLSearchParams({ service: 'harbor-registry', scope: `repository:${REPO}:pull` }).toString();
      const refused: number[] = [];
      for (let i = 0; i < 3000; i += 50) {
        refused.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => getFrom(`${lb.url}/service/token?${q}`, { authorization: basic(`made-up-${i + j}`, 'guess') }, agent)))));
      }
      assert.ok(refused.every((s) => s === 401), 'every made-up login refused by the nodes');
      if (redis) assert.equal(await redis.dbsize(), keysBefore, 'not one Redis key written for a refused login');
      assert.deepEqual(await finishUploads(lb, auth, locations), Array(20).fill(201), 'every upload continues on the node that began it');
      assert.deepEqual(await evictions(lb), { upload: 0, session: 0, visitor: 0, client: 0 });
    });
  }

  it('memory: a client that begins uploads far beyond sticky.maxEntries pushes out only its own upload pins; another client\'s uploads continue on their nodes', async (t) => {
    const { lb } = await cluster(t, 'memory');
    const token = await tokenFor(lb);
    const auth = { authorization: `Bearer ${token}` };
    const locations = await beginUploads(lb, auth, 20);
    // Another user, four times the space in uploads begun, each from another address (one owner all the same).
    const mallory = { authorization: `Bearer ${await tokenFor(lb, 'mallory')}` };
    const flood: number[] = [];
    for (let i = 0; i < 4 * MAX_ENTRIES; i += 20) {
      flood.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => postFrom(`${lb.url}/v2/${REPO}/blobs/uploads/`, mallory, `127.0.3.${1 + ((i + j) % 200)}`)))));
    }
    assert.ok(flood.every((s) => s === 202), 'the nodes accepted every upload: each made a pin');
    assert.deepEqual(await finishUploads(lb, auth, locations), Array(20).fill(201), 'every upload of the first client continues on the node that began it');
    const ev = await evictions(lb);
    assert.equal(ev.upload, 4 * MAX_ENTRIES + 20 - MAX_ENTRIES, 'the space stays full: one pin pushed out per pin beyond it, each the flooding client\'s');
  });

  it('redis: visitors beyond sticky.maxEntries (anonymous visits from 150 addresses, then 200 from one) push out only visitor pins; Redis visitor keys stay within the bound, uploads intact', async (t) => {
    const { lb, redis } = await cluster(t, 'redis');
    const auth = { authorization: `Bearer ${await tokenFor(lb)}` };
    const locations = await beginUploads(lb, auth, 20);
    const agent = new http.Agent({ keepAlive: false });
    // Each visit to the portal gets a CSRF cookie from the node: a visitor pin.
    for (let i = 0; i < 150; i++) assert.equal(await getFrom(`${lb.url}/`, {}, agent, `127.0.${1 + Math.floor(i / 200)}.${1 + (i % 200)}`), 200);
    for (let i = 0; i < 200; i++) assert.equal(await getFrom(`${lb.url}/`, {}, agent, '127.0.9.9'), 200);
    // Evicted keys are deleted from Redis without waiting for the request: let those commands land.
    for (let i = 0; i < 50 && (await redis!.keys('flood:visitor:*')).length > MAX_ENTRIES; i++) await new Promise((r) => setImmediate(r));
    const visitorKeys = (await redis!.keys('flood:visitor:*')).length;
    assert.ok(visitorKeys <= MAX_ENTRIES, `${visitorKeys} visitor keys in Redis`);
    assert.equal((await redis!.keys('flood:upload:*')).length, 20);
    const ev = await evictions(lb);
    assert.deepEqual([ev.upload, ev.session], [0, 0]);
    assert.ok(ev.visitor! >= 100, `visitor evictions counted: ${ev.visitor}`);
    assert.deepEqual(await finishUploads(lb, auth, locations), Array(20).fill(201));
  });
});
