import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import type { WriteBatch } from '../../src/util/write-batch.js';
import { startApp } from '../support/app.js';
import { makeServerCert } from '../support/pki.js';
import { startServer } from '../support/servers.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

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

/**
 * A loopback round trip begun after harbor-lb wrote: by its end the test's own clients have read
 * whatever had reached them, so an empty buffer then means nothing was written.
 */
async function roundTrip(adminUrl: string): Promise<void> {
  await (await fetch(`${adminUrl}/-/status`)).arrayBuffer();
}

const MANIFEST = Buffer.alloc(2048, 'm');
const BLOB = Buffer.alloc(100 * 1024, 'b');
type T = { after: (fn: () => unknown) => void };

async function setUp(t: T, options: { maxConnections?: number; tls?: boolean } = {}) {
  const seen: string[] = [];
  const node = await startServer((req, res) => {
    if (!req.url!.startsWith('/v2/a/')) return void res.writeHead(200).end('{}');
    seen.push(`${req.method} ${req.url}`);
    const body = req.url!.includes('/blobs/') ? BLOB : MANIFEST;
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  t.after(() => node.close());
  let cert: ReturnType<typeof makeServerCert> | undefined;
  if (options.tls === true) {
    const tmp = makeTempDir('turn-end-writes');
    t.after(tmp.remove);
    cert = makeServerCert(join(tmp.dir, 'pki'));
  }
  const held = new HeldWrites();
  const listen = { ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }), ...(cert === undefined ? {} : { tls: { cert: cert.certFile, key: cert.keyFile } }) };
  const lb = await startApp([node.url], { listen } as Parameters<typeof startApp>[1], { writes: held });
  t.after(() => lb.close());
  const port = Number(new URL(lb.url).port);
  /** A client connection (from `localAddress`), with what it received so far. */
  const connect = async (localAddress = '127.0.0.1') => {
    const socket: net.Socket =
      cert === undefined
        ? net.connect({ port, host: '127.0.0.1', localAddress })
        : tls.connect({ socket: net.connect({ port, host: '127.0.0.1', localAddress }), ca: readFileSync(cert.caFile), servername: 'localhost' });
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    let got = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    // A refused TLS newcomer may be closed before its handshake ends.
    await new Promise<void>((resolve) => {
      socket.once(cert === undefined ? 'connect' : 'secureConnect', () => resolve());
      socket.once('close', () => resolve());
    });
    return { socket, received: () => got };
  };
  const client = await connect();
  return { seen, held, lb, connect, client: client.socket, received: client.received };
}

/** Whether `bytes` hold one whole answer: its head and a body of its Content-Length (none for a HEAD). */
function whole(bytes: Buffer, head = false): boolean {
  const text = bytes.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
  return bytes.length === end + 4 + (head ? 0 : length);
}

const GET = 'GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n';

/**
 * Sends `request` and makes the held writes one turn at a time up to its answer's end: the node is
 * not asked before the head is made, and once the exchange has ended nothing has reached the
 * client yet. The answer's end is left waiting.
 */
async function upToTheEnd({ seen, held, lb, client, received }: Awaited<ReturnType<typeof setUp>>, request: string): Promise<void> {
  client.write(request);
  await until(() => held.waiting.length > 0, 'the head to the node was held');
  assert.deepEqual(seen, [], 'the node was asked before the turn ended');
  held.flush();
  await lb.logs.waitForRequests(1);
  await roundTrip(lb.adminUrl);
  assert.equal(received().length, 0, 'the client had bytes before the turn ended');
}

describe('a request head to the node and a small answer to the client go out at the end of the turn', () => {
  it('a small GET: the node is asked only once the head is made, the client answered only once the end is', async (t) => {
    const app = await setUp(t);
    const { held, received } = app;
    await upToTheEnd(app, GET);
    held.flush();
    await until(() => whole(received()), 'the client got the whole answer');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.ok(received().subarray(received().length - MANIFEST.length).equals(MANIFEST), "the body is the node's, byte for byte");
  });

  it('a HEAD: its answer (a head alone) waits the same way', async (t) => {
    const app = await setUp(t);
    const { held, received } = app;
    await upToTheEnd(app, 'HEAD /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n');
    held.flush();
    await until(() => whole(received(), true), 'the client got the head');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 [^]*\r\ncontent-length: 2048\r\n/i);
  });

  it('a token answer harbor-lb held whole to verify it waits the same way', async (t) => {
    const tmp = makeTempDir('turn-end-token');
    t.after(tmp.remove);
    const sim = await startSimCluster(tmp.dir, ['none']);
    t.after(() => sim.close());
    const held = new HeldWrites();
    const lb = await startApp(sim.nodes.map((n) => n.url), { token: { rootCert: sim.cluster.certFile, probe: { enabled: false } } }, { writes: held });
    t.after(() => lb.close());
    const client = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => client.destroy());
    let got = Buffer.alloc(0);
    client.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    const basic = Buffer.from('admin:Harbor12345').toString('base64');
    client.write(`GET /service/token?account=admin&service=harbor-registry HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${basic}\r\n\r\n`);
    await until(() => held.waiting.length > 0, 'the head to the node was held');
    held.flush();
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.status, 200);
    await roundTrip(lb.adminUrl);
    assert.equal(got.length, 0, 'the client had bytes before the turn ended');
    held.flush();
    await until(() => whole(got), 'the client got the token');
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 200 [^]*"token":"/);
  });

  it('a blob past 16 KiB: only the head to the node waits; the body goes out as it comes', async (t) => {
    const { seen, held, client, received } = await setUp(t);
    client.write('GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length > 0, 'the head to the node was held');
    held.flush();
    await until(() => whole(received()), 'the client got the whole blob with nothing more made');
    assert.deepEqual(seen, ['GET /v2/a/blobs/sha256:1']);
    assert.ok(received().subarray(received().length - BLOB.length).equals(BLOB));
  });

  it('a client that leaves while its answer waits: the end is dropped, the node counts no failure, and the next client is served', async (t) => {
    const app = await setUp(t);
    const { seen, held, lb, connect, client } = app;
    await upToTheEnd(app, GET);
    assert.equal(lb.logs.requests()[0]!.status, 200);
    client.destroy();
    held.flush();
    const next = await connect();
    next.socket.write(GET);
    await until(() => held.waiting.length > 0, 'the second head was held');
    held.flush();
    await lb.logs.waitForRequests(2);
    held.flush();
    await until(() => whole(next.received()), 'the second client got its answer');
    assert.equal(seen.length, 2);
    assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
  });

  it('an attempt that ends while its head waits sends nothing to the node, and is no failure of it', async (t) => {
    const { seen, held, lb, connect, client } = await setUp(t);
    client.write(GET);
    await until(() => held.waiting.length > 0, 'the head to the node was held');
    // The client leaves: the attempt is aborted before its head went out.
    client.destroy();
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, 'CLIENT_GONE');
    held.flush();
    // The node would have the first request by the time a second one, sent after it, is answered.
    const next = await connect();
    next.socket.write('GET /v2/a/manifests/second HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.waiting.length > 0, 'the second head was held');
    held.flush();
    await lb.logs.waitForRequests(2);
    held.flush();
    await until(() => whole(next.received()), 'the second client got its answer');
    assert.deepEqual(seen, ['GET /v2/a/manifests/second']);
    assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
  });

  it('an answer whose end waits when the app closes still reaches its client', async (t) => {
    const app = await setUp(t);
    const { lb, client, received } = app;
    await upToTheEnd(app, GET);
    await lb.app.close(5_000);
    await until(() => whole(received()) || client.destroyed, 'the answer or the close reached the client');
    assert.ok(whole(received()), 'the client got its whole answer before its connection closed');
    assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 /);
  });

  for (const overTls of [false, true]) {
    it(`at listen.maxConnections, a connection whose answer waits is not the idle one closed for a newcomer${overTls ? ' (TLS listener)' : ''}`, async (t) => {
      const { held, lb, connect, client, received } = await setUp(t, { maxConnections: 1, tls: overTls });
      client.write(GET);
      await until(() => held.waiting.length > 0, 'the head to the node was held');
      held.flush();
      await lb.logs.waitForRequests(1);
      // A second client: over listen.maxConnections, and the first connection's request has ended.
      const firstClosed = new Promise<string>((resolve) => client.once('close', () => resolve('first')));
      const newcomer = await connect('127.0.0.2');
      // One of the two connections closes: the newcomer's (refused), or the first (closed as idle).
      const newcomerClosed = newcomer.socket.destroyed ? 'newcomer' : new Promise<string>((resolve) => newcomer.socket.once('close', () => resolve('newcomer')));
      const closed = await Promise.race([newcomerClosed, firstClosed]);
      assert.equal(closed, 'newcomer', "the first client's connection was closed with its answer waiting");
      held.flush();
      await until(() => whole(received()), 'the first client got its answer');
      assert.match(received().toString('latin1'), /^HTTP\/1\.1 200 /);
    });
  }
});
