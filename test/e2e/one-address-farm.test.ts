import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startRealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';
import { ADMIN_BASIC as BASIC, hashedRequest, pushBlob as pushBlobTo, registryToken } from '../support/registry-requests.js';

const REPO = 'library/farm';
const FARM = '127.0.0.20';
const TRICKLER = '127.0.0.21';
const OTHER = '127.0.0.22';

/** A request from a chosen loopback address through harbor-lb. */
const request = (lb: StartedApp, path: string, opts: Parameters<typeof hashedRequest>[1] & { localAddress: string }) => hashedRequest(`${lb.url}${path}`, opts);

/** docker login from `localAddress`: a token for the robot account, which also vouches for that client. */
const token = (lb: StartedApp, localAddress: string) => registryToken(lb.url, `repository:${REPO}:pull,push`, localAddress);

/** Pushes one blob with the registry API through harbor-lb; returns its digest. */
const pushBlob = (lb: StartedApp, auth: string, blob: Buffer, localAddress: string) => pushBlobTo(lb.url, REPO, auth, blob, localAddress);

/**
 * Begins a real upload, then trickles its PATCH: announces 1 MB, sends 2 KiB a second (above
 * limits.minBodyRate, so it is never cut) until `stop`. Resolves once the PATCH is under way.
 */
async function trickleUpload(lb: StartedApp, auth: string, stop: AbortSignal): Promise<void> {
  const started = await request(lb, `/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization: auth }, localAddress: TRICKLER });
  assert.equal(started.status, 202);
  const loc = new URL(String(started.headers.location));
  const { port } = new URL(lb.url);
  const socket = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: TRICKLER });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(`PATCH ${loc.pathname}${loc.search} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`);
  const chunk = Buffer.alloc(2048, 7);
  const timer = setInterval(() => socket.write(chunk), 1000);
  stop.addEventListener('abort', () => {
    clearInterval(timer);
    socket.destroy();
  });
}

describe('one address, many clients (issue 18: fair shares, not refusals)', () => {
  it('400 parallel pulls from one address and one account all succeed; a trickle flood from another leaves a third client served within 2 s', { timeout: 180_000 }, async (t) => {
    const tmp = makeTempDir('farm');
    t.after(tmp.remove);
    const cluster = await startRealHarborCluster(tmp.dir, 3);
    t.after(() => cluster.close());
    // One process: the fair queue this measures lives in each worker, and the 2 s bound is a
    // latency on a 2-core machine shared with three registries and 830 client connections, where
    // two workers and a control plane compete with them for the cores (1.2-2.1 s measured with two).
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 1 },
      token: { rootCert: cluster.keys.certFile, probe: { enabled: false } },
      sticky: { keys: ['upload', 'session', 'client'] },
      health: { enabled: true, interval: '2s' },
    });
    t.after(() => lb.close());
    const auth = `Bearer ${await token(lb, FARM)}`;
    const layer = randomBytes(1024 * 1024);
    const digest = await pushBlob(lb, auth, layer, FARM);
    const expected = createHash('sha256').update(layer).digest('hex');

    // The trickle flood: 130 uploads crawling along and 300 idle connections, all from one address.
    const stop = new AbortController();
    // One listener per trickling upload.
    setMaxListeners(200, stop.signal);
    t.after(() => stop.abort());
    const trickleAuth = `Bearer ${await token(lb, TRICKLER)}`;
    for (let i = 0; i < 130; i += 10) await Promise.all(Array.from({ length: 10 }, () => trickleUpload(lb, trickleAuth, stop.signal)));
    const { port } = new URL(lb.url);
    const idle: net.Socket[] = [];
    t.after(() => idle.forEach((s) => s.destroy()));
    for (let i = 0; i < 300; i++) {
      const s = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: TRICKLER });
      s.on('error', () => {});
      idle.push(s);
    }

    // The farm: 400 pulls of one layer at once, one address, one robot account.
    const farm = new http.Agent({ keepAlive: true, maxSockets: 400 });
    t.after(() => farm.destroy());
    const farmDone = Promise.all(Array.from({ length: 400 }, () => request(lb, `/v2/${REPO}/blobs/${digest}`, { headers: { authorization: auth }, agent: farm, localAddress: FARM })));

    // Meanwhile another client logs in, pulls the manifest list and a blob, and uploads a small layer.
    const otherAuth = `Bearer ${await token(lb, OTHER)}`;
    const otherMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const tok = await request(lb, `/service/token?service=harbor-registry&scope=repository%3A${encodeURIComponent(REPO)}%3Apull`, { headers: { authorization: BASIC }, localAddress: OTHER });
      const head = await request(lb, `/v2/${REPO}/blobs/${digest}`, { method: 'HEAD', headers: { authorization: otherAuth }, localAddress: OTHER });
      const started = performance.now();
      await pushBlob(lb, otherAuth, randomBytes(64 * 1024), OTHER);
      const push = performance.now() - started;
      assert.deepEqual([tok.status, head.status], [200, 200]);
      otherMs.push(tok.ms, head.ms, push);
    }

    const pulls = await farmDone;
    stop.abort();
    const statuses = new Map<number, number>();
    for (const p of pulls) statuses.set(p.status, (statuses.get(p.status) ?? 0) + 1);
    t.diagnostic(`farm: ${[...statuses].map(([s, n]) => `${n} x ${s}`).join(', ')}; slowest pull ${Math.max(...pulls.map((p) => p.ms)).toFixed(0)} ms`);
    t.diagnostic(`the other client: slowest request ${Math.max(...otherMs).toFixed(0)} ms (token, HEAD, and a whole 64 KiB push of 2 requests) while 130 uploads trickled and 300 connections idled`);
    assert.deepEqual([...statuses], [[200, 400]], 'every pull answered 200');
    assert.ok(pulls.every((p) => p.bytes === layer.length && p.sha256 === expected), 'each with the whole layer');
    assert.ok(Math.max(...otherMs) < 2000, `the other client waited ${Math.max(...otherMs).toFixed(0)} ms at most`);
    assert.equal(lb.logs.requests().filter((l) => l.status === 429 || l.status === 503).length, 0, 'nobody refused');
  });
});
