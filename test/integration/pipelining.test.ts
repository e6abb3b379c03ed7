import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

const BIG = 4 * 1024 * 1024;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A node serving blobs of `size` bytes (4 MiB unless said) and counting what it was asked. */
async function blobNode(t: { after: (fn: () => unknown) => void }, size = BIG) {
  const seen: string[] = [];
  const blob = Buffer.alloc(size, 1);
  const node = await startServer((req, res) => {
    seen.push(req.url!);
    res.writeHead(200, { 'content-length': size });
    res.end(blob);
  });
  t.after(() => node.close());
  return { node, seen };
}

/** A raw client connection to `lb`, with what it received so far (as latin1 text). */
function rawClient(lb: { url: string }): { s: net.Socket; got: () => string } {
  const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  return { s, got: () => got };
}

function pipelined(n: number): string {
  return Array.from({ length: n }, (_, i) => `GET /v2/a/blobs/sha256:${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
}

// Found in review (issue 18): a pipelined request's response is queued behind the one under way
// and never hears its client leave, so each held a node connection and memory for good, and a
// buffered response's 'drain' resumed undici inside its own parser (ERR_ASSERTION, a node failure).
describe('pipelined requests are served one at a time per connection', () => {
  it('a client that pipelines 8 large GETs and reads late gets all 8 whole, in order; no node failure', async (t) => {
    const { node, seen } = await blobNode(t);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => s.destroy());
    await once(s, 'connect');
    s.pause();
    s.write(pipelined(8));
    for (let i = 0; i < 20; i++) await settle();
    assert.ok(seen.length <= 2, `the node was asked for ${seen.length} before the client read anything`);
    let received = 0;
    s.on('data', (c: Buffer) => (received += c.length));
    s.resume();
    await lb.logs.waitForRequests(8);
    while (received < 8 * BIG) await once(s, 'data');
    const lines = lb.logs.requests();
    assert.deepEqual(
      lines.map((l) => [l.path, l.status, l.error]),
      Array.from({ length: 8 }, (_, i) => [`/v2/a/blobs/sha256:${i}`, 200, undefined]),
    );
    assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
  });

  it('a client that pipelines and hangs up leaves nothing behind: no node connection held, the waiting requests never sent', async (t) => {
    const { node, seen } = await blobNode(t);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    for (let c = 0; c < 6; c++) {
      const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
      await once(s, 'connect');
      s.pause();
      s.write(pipelined(8));
      for (let i = 0; i < 10; i++) await settle();
      s.destroy();
    }
    const n1 = lb.app.nodes.all[0]!;
    for (let i = 0; i < 200 && n1.traffic.inflight > 0; i++) await settle();
    assert.equal(n1.traffic.inflight, 0, 'every attempt ended');
    // An answer that fits in loopback's socket buffers ends although the client reads nothing, and
    // the next request rightly starts then; so each client may have one request under way when it
    // hangs up, plus those whose answers were handed over whole. Without the gate all 8 start.
    await lb.logs.waitForRequests(seen.length);
    const whole = lb.logs.requests().filter((l) => l.status === 200 && l.error === undefined).length;
    assert.ok(seen.length <= 6 + whole, `the node was asked ${seen.length} times for 6 clients, ${whole} answers whole`);
  });

  it(`a connection pipelining more than 16 requests deep is closed, and harbor-lb held no more than that`, async (t) => {
    const { node, seen } = await blobNode(t);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.write(pipelined(2000));
    await closed;
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.equal(line.reason, 'PIPELINE_TOO_DEEP');
    assert.ok(seen.length <= 1, `the node was asked ${seen.length} times`);
  });

  it('a request after one that asked to close the connection is ignored: the first gets its own answer, not a 400 for the second', async (t) => {
    const { node, seen } = await blobNode(t, 1000);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const { s, got } = rawClient(lb);
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.write('GET /v2/a/blobs/sha256:0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    assert.match(got(), /^HTTP\/1\.1 200 /);
    assert.equal(got().match(/HTTP\/1\.1 /g)!.length, 1, 'one answer, then the connection closed');
    assert.deepEqual(seen, ['/v2/a/blobs/sha256:0']);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual([line!.status, line!.error], [200, undefined]);
    assert.equal(lb.logs.lines.filter((l) => l.event === 'connection_rejected').length, 0);
  });
});

// Found in review (issue 20): node:http's parser stops at a request asking to upgrade the
// connection and drops the bytes behind it in the same read, so a request pipelined there waited
// forever on a connection harbor-lb kept open.
describe('a request asking to upgrade the connection', () => {
  for (const upgrade of ['Upgrade: websocket\r\nConnection: Upgrade', 'Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']) {
    it(`is answered as plain HTTP/1.1, then the connection is closed so a request pipelined behind it is sent again (${upgrade.split('\r\n')[0]})`, async (t) => {
      const { node, seen } = await blobNode(t, 1000);
      const lb = await startApp([node.url]);
      t.after(() => lb.close());
      const { s, got } = rawClient(lb);
      const ended = once(s, 'end');
      s.write(`GET /v2/a/blobs/sha256:0 HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n\r\nGET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n`);
      const [line] = await lb.logs.waitForRequests(1);
      assert.deepEqual([line!.status, line!.error], [200, undefined]);
      while (!got().includes('\r\n\r\n') || got().length < got().indexOf('\r\n\r\n') + 4 + 1000) await once(s, 'data');
      assert.match(got(), /^HTTP\/1\.1 200 /);
      assert.match(got(), /\r\nconnection: close\r\n/i, 'the answer says the connection closes');
      await ended;
      assert.deepEqual(seen, ['/v2/a/blobs/sha256:0']);
      assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
    });
  }

  it('without Upgrade, the same pipelined pair is answered on one kept-alive connection', async (t) => {
    const { node, seen } = await blobNode(t, 1000);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const { s, got } = rawClient(lb);
    t.after(() => s.destroy());
    s.write('GET /v2/a/blobs/sha256:0 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await lb.logs.waitForRequests(2);
    while ((got().match(/HTTP\/1\.1 200 /g) ?? []).length < 2) await once(s, 'data');
    assert.doesNotMatch(got(), /\r\nconnection: close\r\n/i);
    assert.deepEqual(seen, ['/v2/a/blobs/sha256:0', '/v2/a/blobs/sha256:1']);
  });
});
