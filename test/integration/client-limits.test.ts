import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { send } from '../support/http-client.js';
import { startServer } from '../support/servers.js';

/** A GET from a chosen loopback address (127.0.0.0/8 is all local), body read whole. */
function getFrom(url: string, localAddress: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { localAddress, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('per-client limits', () => {
  it('requests in flight per client: the one over the limit gets 429, other clients are served', async (t) => {
    const held: http.ServerResponse[] = [];
    const node = await startServer((req, res) => {
      if (req.url!.includes('/held/')) held.push(res);
      else res.end('ok');
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { limits: { requestsPerClient: 2 } });
    t.after(() => lb.close());
    const pending = [getFrom(`${lb.url}/v2/a/blobs/held/1`, '127.0.0.1'), getFrom(`${lb.url}/v2/a/blobs/held/2`, '127.0.0.1')];
    while (held.length < 2) await once(node.server, 'request');
    const over = await getFrom(`${lb.url}/v2/a/manifests/1`, '127.0.0.1');
    assert.equal(over.status, 429);
    assert.equal((JSON.parse(over.body) as { errors: Array<{ code: string }> }).errors[0]!.code, 'TOOMANYREQUESTS');
    const line = await lb.logs.waitFor((l) => l.event === 'request' && l.status === 429);
    assert.equal(line.error, 'CLIENT_LIMIT: requestsPerClient');
    assert.equal((await getFrom(`${lb.url}/v2/a/manifests/1`, '127.0.0.2')).status, 200, 'another client is served');
    for (const r of held) r.end('done');
    assert.deepEqual((await Promise.all(pending)).map((r) => r.status), [200, 200]);
    assert.equal((await getFrom(`${lb.url}/v2/a/manifests/1`, '127.0.0.1')).status, 200, 'slots are given back');
  });

  // Found in review: one client could hold every connection a node had, and everyone else's
  // requests to it waited in the queue with no timeout.
  it("no client holds more than limits.nodeShare of a node's connections: the next goes elsewhere or gets 429, others are served", async (t) => {
    const held: http.ServerResponse[] = [];
    const node = await startServer((req, res) => {
      if (req.url!.includes('/held/')) held.push(res);
      else res.end('ok');
    });
    t.after(() => node.close());
    t.after(() => held.forEach((r) => r.end()));
    // Two connections to the node; a client may hold half of them.
    const lb = await startApp([node.url], { proxy: { maxConnectionsPerNode: 2 }, limits: { nodeShare: 0.5 } });
    t.after(() => lb.close());
    const pending = getFrom(`${lb.url}/v2/a/blobs/held/1`, '127.0.0.1');
    while (held.length < 1) await once(node.server, 'request');
    const over = await getFrom(`${lb.url}/v2/a/blobs/held/2`, '127.0.0.1');
    assert.equal(over.status, 429);
    assert.match(over.body, /limits\.nodeShare/);
    assert.equal((await lb.logs.waitFor((l) => l.event === 'request' && l.status === 429)).error, 'CLIENT_LIMIT: nodeShare');
    assert.equal((await getFrom(`${lb.url}/v2/a/manifests/1`, '127.0.0.2')).status, 200, 'another client gets the connection left');
    held[0]!.end('done');
    assert.equal((await pending).status, 200);
  });

  it('connections per client address: the one over the limit is answered 429 and logged; other addresses connect', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    t.after(() => node.close());
    const lb = await startApp([node.url], { limits: { connectionsPerClient: 3 } });
    t.after(() => lb.close());
    const { port } = new URL(lb.url);
    const open: net.Socket[] = [];
    t.after(() => open.forEach((s) => s.destroy()));
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: '127.0.0.1' });
      await once(s, 'connect');
      open.push(s);
    }
    const extra = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: '127.0.0.1' });
    let answer = '';
    extra.on('data', (c: Buffer) => (answer += c.toString()));
    await once(extra, 'close');
    assert.match(answer, /^HTTP\/1\.1 429 /);
    assert.match(answer, /limits\.connectionsPerClient/);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.deepEqual([line.reason, line.status, (line.client as { ip: string }).ip], ['TOO_MANY_CONNECTIONS', 429, '127.0.0.1']);
    assert.equal((await getFrom(`${lb.url}/v2/`, '127.0.0.2')).status, 200);
    open.pop()!.destroy();
    await settle();
    // A slot is free again once a connection closes.
    for (let i = 0; i < 50 && (await getFrom(`${lb.url}/v2/`, '127.0.0.1').catch(() => ({ status: 0 }))).status !== 200; i++) await settle();
    assert.equal((await getFrom(`${lb.url}/v2/`, '127.0.0.1')).status, 200);
  });

  it('a request body trickled slower than limits.minBodyRate is cut with 408 after its window; the node is not charged', async (t) => {
    const clock = new FakeClock();
    let nodeSaw!: () => void;
    const nodeReading = new Promise<void>((r) => (nodeSaw = r));
    const node = await startServer((req, res) => {
      nodeSaw();
      req.on('data', () => {});
      req.on('end', () => res.end('stored'));
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { limits: { minBodyRate: 100, bodyRateWindow: '3s' } }, { clock });
    t.after(() => lb.close());
    const req = http.request(`${lb.url}/v2/a/blobs/uploads/u1`, { method: 'PATCH', agent: false, headers: { 'content-length': 10_000_000 } });
    const answered = new Promise<{ status: number; body: string }>((resolve) =>
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
        res.on('error', () => resolve({ status: res.statusCode!, body }));
      }),
    );
    req.on('error', () => {});
    req.write('x'.repeat(70_000)); // past the size read whole, so it streams to the node
    await nodeReading;
    // One byte a second: far below 100 bytes/s. The first window (the grace) holds the 70 KB
    // burst; the second is cut.
    let answer: { status: number; body: string } | undefined;
    void answered.then((a) => (answer = a));
    for (let i = 0; i < 12 && answer === undefined; i++) {
      req.write('x');
      await settle();
      clock.advance(1000);
      await settle();
    }
    answer = await answered;
    assert.equal(answer.status, 408);
    assert.match(answer.body, /limits\.minBodyRate/);
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.deepEqual([line.status, line.error], [408, 'CLIENT_TOO_SLOW: request body']);
    assert.equal(lb.app.nodes.get('n1')!.failures, 0);
    req.destroy();
  });

  it('a client that stops reading a response is cut after its window; the node is not charged', async (t) => {
    const clock = new FakeClock();
    const node = await startServer((_q, res) => {
      res.writeHead(200, { 'content-length': 64 * 1024 * 1024 });
      const chunk = Buffer.alloc(64 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { limits: { minBodyRate: 100, bodyRateWindow: '3s' } }, { clock });
    t.after(() => lb.close());
    const req = http.get(`${lb.url}/v2/a/blobs/sha256:1`, { agent: false }, (res) => res.pause());
    req.on('error', () => {});
    t.after(() => req.destroy());
    let line: Record<string, unknown> | undefined;
    void lb.logs.waitFor((l) => l.event === 'request').then((l) => (line = l));
    // Bounded: each simulated second lets the proxy fill the socket buffers and the watch look.
    for (let i = 0; i < 40 && line === undefined; i++) {
      for (let j = 0; j < 5; j++) await settle();
      clock.advance(1000);
      await settle();
    }
    assert.ok(line, 'the exchange was cut');
    assert.equal(line.error, 'CLIENT_TOO_SLOW: response body');
    assert.equal(line.status, 200, 'the status the client got, not 0');
    assert.equal(lb.app.nodes.get('n1')!.failures, 0);
  });

  it('a slow upload that keeps moving at the minimum rate is never cut', async (t) => {
    const clock = new FakeClock();
    const node = await startServer((req, res) => {
      req.on('data', () => {});
      req.on('end', () => res.end('stored'));
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { limits: { minBodyRate: 100, bodyRateWindow: '3s' } }, { clock });
    t.after(() => lb.close());
    const total = 70_000 + 30 * 120;
    const answer = new Promise<number>((resolve, reject) => {
      const req = http.request(`${lb.url}/v2/a/blobs/uploads/u2`, { method: 'PATCH', agent: false, headers: { 'content-length': total } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      void (async () => {
        req.write('x'.repeat(70_000));
        // 120 bytes each simulated second for 30 s: a little over the minimum, ten windows long.
        for (let i = 0; i < 30; i++) {
          await new Promise<void>((r) => req.write('y'.repeat(120), () => r()));
          await settle();
          clock.advance(1000);
        }
        req.end();
      })();
    });
    assert.equal(await answer, 200);
  });
});
