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

describe('per-client shares: fair queues, not refusals', () => {
  // Issue 18: one address (a CI farm behind NAT) got 429 past limits.requestsPerClient and
  // limits.nodeShare while the nodes had connections to spare; docker takes 429 as final.
  it('a client over requestsPerClient and its node share is served while the node has room: no 429', async (t) => {
    const held: http.ServerResponse[] = [];
    const node = await startServer((req, res) => {
      if (req.url!.includes('/held/')) held.push(res);
      else res.end('ok');
    });
    t.after(() => node.close());
    t.after(() => held.forEach((r) => r.end()));
    const lb = await startApp([node.url], { proxy: { maxConnectionsPerNode: 20 }, limits: { requestsPerClient: 2, nodeShare: 0.1 } });
    t.after(() => lb.close());
    const pending = Array.from({ length: 12 }, (_, i) => getFrom(`${lb.url}/v2/a/blobs/held/${i}`, '127.0.0.1'));
    while (held.length < 12) await once(node.server, 'request');
    assert.equal((await getFrom(`${lb.url}/v2/a/manifests/1`, '127.0.0.1')).status, 200, 'a 13th request of the same client is served too');
    for (const r of held) r.end('done');
    assert.deepEqual((await Promise.all(pending)).map((r) => r.status), Array(12).fill(200));
    assert.equal(lb.logs.requests().filter((l) => l.status === 429).length, 0);
  });

  it("under contention, a client above its share of a node's connections waits behind other clients, and every request is answered", async (t) => {
    const held: http.ServerResponse[] = [];
    const node = await startServer((req, res) => {
      if (req.url!.includes('/held/')) held.push(res);
      else res.end(req.url);
    });
    t.after(() => node.close());
    t.after(() => held.forEach((r) => r.end()));
    // Four connections to the node; a client's share is one.
    const lb = await startApp([node.url], { proxy: { maxConnectionsPerNode: 4 }, limits: { nodeShare: 0.25 } });
    t.after(() => lb.close());
    const farm = Array.from({ length: 3 }, (_, i) => getFrom(`${lb.url}/v2/a/blobs/held/${i}`, '127.0.0.1'));
    while (held.length < 3) await once(node.server, 'request');
    // The last connection is kept from the farm (over its share): another client gets it at once.
    assert.equal((await getFrom(`${lb.url}/v2/a/manifests/other`, '127.0.0.2')).status, 200);
    // The pool is full now: the farm's next request and another client's wait; the other goes first.
    const farmNext = getFrom(`${lb.url}/v2/a/manifests/farm-next`, '127.0.0.1');
    const heldOther = getFrom(`${lb.url}/v2/a/blobs/held/other`, '127.0.0.3');
    while (held.length < 4) await once(node.server, 'request');
    const otherWaits = getFrom(`${lb.url}/v2/a/manifests/other-waits`, '127.0.0.2');
    for (let i = 0; i < 20; i++) await settle();
    held.shift()!.end('done');
    assert.equal((await otherWaits).status, 200, 'the lighter client had the freed connection');
    for (const r of held.splice(0)) r.end('done');
    assert.deepEqual([(await farmNext).status, (await heldOther).status], [200, 200], 'the farm is served once the others are');
    assert.deepEqual((await Promise.all(farm)).map((r) => r.status), [200, 200, 200]);
    const order = lb.logs.requests().map((l) => String(l.path).split('/').pop());
    assert.ok(order.indexOf('other-waits') < order.indexOf('farm-next'), `served in that order: ${order.join(' ')}`);
  });

  it('a request that found no node connection within limits.queueTimeout gets 503 with Retry-After; nothing is held against the node', async (t) => {
    const clock = new FakeClock();
    const held: http.ServerResponse[] = [];
    const node = await startServer((_q, res) => held.push(res));
    t.after(() => node.close());
    t.after(() => held.forEach((r) => r.end()));
    const lb = await startApp([node.url], { proxy: { maxConnectionsPerNode: 1 }, limits: { queueTimeout: '10s' } }, { clock });
    t.after(() => lb.close());
    const first = getFrom(`${lb.url}/v2/a/blobs/sha256:1`, '127.0.0.1');
    while (held.length < 1) await once(node.server, 'request');
    const waiting = getFrom(`${lb.url}/v2/a/blobs/sha256:2`, '127.0.0.2');
    for (let i = 0; i < 20; i++) await settle();
    clock.advance(10_000);
    const answer = await waiting;
    assert.equal(answer.status, 503);
    assert.match(answer.body, /limits\.queueTimeout/);
    const line = await lb.logs.waitFor((l) => l.event === 'request' && l.status === 503);
    assert.equal(line.error, 'QUEUE_TIMEOUT');
    assert.equal(lb.app.nodes.get('n1')!.traffic.failures, 0);
    held[0]!.end('done');
    assert.equal((await first).status, 200);
  });

  it('connections: never refused below listen.maxConnections; at it, idle connections of the heaviest address are closed first, and an address over its share gets 429', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    t.after(() => node.close());
    const lb = await startApp([node.url], { listen: { maxConnections: 6 }, limits: { connectionsPerClient: 3 } });
    t.after(() => lb.close());
    const { port } = new URL(lb.url);
    const open: net.Socket[] = [];
    t.after(() => open.forEach((s) => s.destroy()));
    const connect = async (localAddress: string) => {
      const s = net.connect({ port: Number(port), host: '127.0.0.1', localAddress });
      await once(s, 'connect');
      open.push(s);
      return s;
    };
    // Five idle connections from one address: more than its share, but harbor-lb is not full.
    const heavy = [];
    for (let i = 0; i < 5; i++) heavy.push(await connect('127.0.0.1'));
    assert.equal((await getFrom(`${lb.url}/v2/`, '127.0.0.2')).status, 200, 'a sixth, from another address');
    await connect('127.0.0.2');
    // Full now: another address's connection makes room by closing one of the heavy address's idle ones.
    const closed = Promise.race(heavy.map((s) => once(s, 'close')));
    assert.equal((await getFrom(`${lb.url}/v2/`, '127.0.0.3')).status, 200);
    await closed;
    for (let i = 0; i < 20; i++) await settle();
    await connect('127.0.0.2');
    // Full again: the heavy address, over its share at the bound, is refused a new one.
    const extra = net.connect({ port: Number(port), host: '127.0.0.1', localAddress: '127.0.0.1' });
    let answer = '';
    extra.on('data', (c: Buffer) => (answer += c.toString()));
    await once(extra, 'close');
    assert.match(answer, /^HTTP\/1\.1 429 /);
    assert.match(answer, /limits\.connectionsPerClient/);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.deepEqual([line.reason, line.status, (line.client as { ip: string }).ip], ['TOO_MANY_CONNECTIONS', 429, '127.0.0.1']);
  });

  // Found in review: the heaviest address's new connection closed another address's idle ones.
  it('at listen.maxConnections, a new connection of the heaviest address closes one of its own idle connections, not another address\'s', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    t.after(() => node.close());
    const lb = await startApp([node.url], { listen: { maxConnections: 10 }, limits: { connectionsPerClient: 8 } });
    t.after(() => lb.close());
    const { port } = new URL(lb.url);
    const open: Array<{ s: net.Socket; from: string; closed: boolean }> = [];
    t.after(() => open.forEach((o) => o.s.destroy()));
    const connect = async (localAddress: string) => {
      const s = net.connect({ port: Number(port), host: '127.0.0.1', localAddress });
      const o = { s, from: localAddress, closed: false };
      s.on('close', () => (o.closed = true));
      s.on('error', () => {});
      await once(s, 'connect');
      open.push(o);
    };
    for (let i = 0; i < 6; i++) await connect('127.0.0.1');
    for (let i = 0; i < 4; i++) await connect('127.0.0.2');
    await connect('127.0.0.1');
    for (let i = 0; i < 50 && !open.some((o) => o.closed); i++) await settle();
    const closed = open.filter((o) => o.closed).map((o) => o.from);
    assert.deepEqual(closed, ['127.0.0.1'], 'one idle connection of the heaviest address, its own');
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
    assert.equal(lb.app.nodes.get('n1')!.traffic.failures, 0);
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
    assert.equal(lb.app.nodes.get('n1')!.traffic.failures, 0);
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
