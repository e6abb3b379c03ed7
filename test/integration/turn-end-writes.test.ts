import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { WriteBatch } from '../../src/util/write-batch.js';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

/** A WriteBatch whose writes wait until the test makes them. */
class HeldWrites implements WriteBatch {
  waiting: Array<() => void> = [];
  later(write: () => void): void {
    this.waiting.push(write);
  }
  flush(): void {
    const now = this.waiting;
    this.waiting = [];
    for (const w of now) w();
  }
}

/** Turns of the event loop until `cond` holds; a bounded number, then the test fails naming `what`. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 20_000 && !cond(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.ok(cond(), `never: ${what}`);
}

const MANIFEST = Buffer.alloc(2048, 'm');
const BLOB = Buffer.alloc(100 * 1024, 'b');

async function setUp(t: { after: (fn: () => unknown) => void }, overrides: Parameters<typeof startApp>[1] = {}) {
  const seen: string[] = [];
  const node = await startServer((req, res) => {
    if (!req.url!.startsWith('/v2/a/')) return void res.writeHead(200).end('{}');
    seen.push(`${req.method} ${req.url}`);
    const body = req.url!.includes('/blobs/') ? BLOB : MANIFEST;
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  t.after(() => node.close());
  const held = new HeldWrites();
  const lb = await startApp([node.url], overrides, { writes: held });
  t.after(() => lb.close());
  const client = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
  t.after(() => client.destroy());
  let got = Buffer.alloc(0);
  client.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  return { seen, held, lb, client, received: () => got, reset: () => (got = Buffer.alloc(0)) };
}

/** Whether `bytes` hold one whole answer: its head and a body of its Content-Length (none for a HEAD). */
function whole(bytes: Buffer, head = false): boolean {
  const text = bytes.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
  return bytes.length === end + 4 + (head ? 0 : length);
}

describe('a request head to the node and a small answer to the client go out at the end of the turn', () => {
  it('a small GET: the node is asked only once the head is made, the client answered only once the end is', async (t) => {
    const { seen, held, client, received } = await setUp(t);
    client.write('GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    assert.deepEqual(seen, [], 'the node was asked before the turn ended');
    held.flush();
    await until(() => seen.length === 1 && held.waiting.length === 1, 'the node answered and the end was held');
    assert.equal(received().length, 0, 'the client had bytes before the turn ended');
    held.flush();
    await until(() => whole(received()), 'the client got the whole answer');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.ok(received().subarray(received().length - MANIFEST.length).equals(MANIFEST), 'the body is the node\'s, byte for byte');
  });

  it('a HEAD: its answer (a head alone) waits the same way', async (t) => {
    const { seen, held, client, received } = await setUp(t);
    client.write('HEAD /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    held.flush();
    await until(() => seen.length === 1 && held.waiting.length === 1, 'the node answered and the end was held');
    assert.equal(received().length, 0);
    held.flush();
    await until(() => whole(received(), true), 'the client got the head');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 [^]*\r\ncontent-length: 2048\r\n/i);
  });

  it('a blob past 16 KiB: only the head to the node waits; the body goes out as it comes', async (t) => {
    const { seen, held, client, received } = await setUp(t);
    client.write('GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    held.flush();
    await until(() => whole(received()), 'the client got the whole blob with nothing more held');
    assert.equal(held.waiting.length, 0);
    assert.deepEqual(seen, ['GET /v2/a/blobs/sha256:1']);
    assert.ok(received().subarray(received().length - BLOB.length).equals(BLOB));
  });

  it('a client that leaves while its answer waits: the end is dropped, the node counts no failure, and the next client is served', async (t) => {
    const { seen, held, lb, client, received } = await setUp(t);
    client.write('GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    held.flush();
    await until(() => seen.length === 1 && held.waiting.length === 1, 'the end was held');
    client.destroy();
    await until(() => client.destroyed, 'the client left');
    held.flush();
    assert.equal(received().length, 0);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.status, 200);
    assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
    // A new client on a new connection: the same path still works.
    const next = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => next.destroy());
    let got = Buffer.alloc(0);
    next.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    next.write('GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the second head was held');
    held.flush();
    await until(() => held.waiting.length === 1, 'the second end was held');
    held.flush();
    await until(() => whole(got), 'the second client got its answer');
  });

  it('an attempt that ends while its head waits sends nothing to the node', async (t) => {
    const { seen, held, client } = await setUp(t);
    client.write('GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    // The client leaves: the attempt is aborted before its head went out.
    client.destroy();
    for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    held.flush();
    for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, []);
  });

  it('at listen.maxConnections, a connection whose answer waits is not the idle one closed for a newcomer', async (t) => {
    const { seen, held, lb, client, received } = await setUp(t, { listen: { maxConnections: 1 } });
    client.write('GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length === 1, 'the head to the node was held');
    held.flush();
    await until(() => seen.length === 1 && held.waiting.length === 1, 'the end was held');
    await lb.logs.waitForRequests(1);
    // A second client: over listen.maxConnections, and the first connection's request has ended.
    const newcomer = net.connect({ port: Number(new URL(lb.url).port), host: '127.0.0.1', localAddress: '127.0.0.2' });
    t.after(() => newcomer.destroy());
    newcomer.on('error', () => {});
    let refusal = '';
    newcomer.on('data', (d: Buffer) => (refusal += d.toString('latin1')));
    // One of the two connections closes: the newcomer's (refused), or the first (closed as idle).
    const closed = await Promise.race([once(newcomer, 'close').then(() => 'newcomer'), once(client, 'close').then(() => 'first')]);
    assert.equal(closed, 'newcomer', 'the first client\'s connection was closed with its answer waiting');
    assert.match(refusal, /^HTTP\/1\.1 503 /, 'the newcomer is refused (no connection is idle)');
    held.flush();
    await until(() => whole(received()), 'the first client got its answer');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 /);
  });
});
