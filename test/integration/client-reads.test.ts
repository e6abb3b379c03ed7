import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { ClientReads, LARGE_READERS } from '../../src/proxy/client-reads.js';
import { READ_SIZE } from '../../src/util/read-sizes.js';
import { ProxyProtocolGate } from '../../src/proxy/proxy-protocol-gate.js';
import { TrustedPeers } from '../../src/proxy/trusted-peers.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * An http.Server given its connections as a request worker is (emit('connection')), each made by
 * `reads` from the handle of a connection a listener accepted: what the control plane sends a
 * worker is such a handle.
 */
async function handedServer(t: TestContext, reads: ClientReads, handler: Handler, attach?: (server: ReturnType<typeof createServer>) => void) {
  const server = createServer(handler);
  attach?.(server);
  const sockets: Socket[] = [];
  /** Each connection's reads, their sizes in order. */
  const readsOf = new Map<Socket, number[]>();
  const tcp = createTcpServer({ pauseOnConnect: true }, (accepted) => {
    const holder = accepted as unknown as { _handle: object | null };
    const handle = holder._handle!;
    // The listener's socket lets go of the handle, as the control plane's copy does once sent.
    holder._handle = null;
    const socket = reads.socketFor(handle);
    sockets.push(socket);
    const seen: number[] = [];
    readsOf.set(socket, seen);
    socket.on('data', (chunk: Buffer) => seen.push(chunk.length));
    server.emit('connection', socket);
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  t.after(() => {
    tcp.close();
    for (const s of sockets) s.destroy();
  });
  return { port: (tcp.address() as AddressInfo).port, sockets, readsOf };
}

/**
 * PUTs random bodies from a client process of its own, per connection (`connections`: each one's
 * body sizes); per connection, the digests sent and those the server answered.
 */
async function put(port: number, connections: number[][]): Promise<Array<{ sent: string[]; answered: string[] }>> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../support/put-client-main.js', import.meta.url)), String(port), JSON.stringify(connections)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'close')) as [number];
  assert.equal(code, 0);
  return (JSON.parse(out) as Array<{ sent: string[]; got: string }>).map(({ sent, got }) => ({ sent, answered: [...got.matchAll(/\r\n\r\n([0-9a-f]{64})/g)].map((m) => m[1]!) }));
}

/** Answers each PUT with the sha256 of its body; `want`: asks for large reads as the request path does. */
function hashing(reads: ClientReads, want: boolean, pieces: number[], onPiece?: () => void): Handler {
  return (req, res) => {
    // Asked within the parse of the read that brought the head (as a request handler is), what is
    // left is counted once that read is parsed: the body bytes after the head are in it by then.
    if (want) reads.want(req.socket, () => Number(req.headers['content-length']) - bytes - req.readableLength, req);
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      pieces.push(c.length);
      hash.update(c);
      onPiece?.();
      // Slower than the client: its bytes wait in the socket, so that reads come full.
      req.pause();
      setImmediate(() => req.resume());
    });
    req.on('end', () => {
      reads.want(req.socket, () => 0, req);
      const digest = hash.digest('hex');
      res.writeHead(200, { 'content-length': digest.length });
      res.end(digest);
    });
  };
}

describe('client connections handed to a request worker read into shared buffers (proxy/client-reads.ts)', () => {
  it('a body asked to read large comes in pieces above 64 KiB, byte for byte; no large read reaches past it; the next request parses', async (t) => {
    const reads = new ClientReads();
    const pieces: number[] = [];
    const { port, readsOf } = await handedServer(t, reads, hashing(reads, true, pieces));
    const sizes = [8 * 1024 * 1024 + 17, 3 * 1024 * 1024 + 5, 2 * 1024 * 1024];
    const [c] = await put(port, [sizes]);
    assert.deepEqual(c!.answered, c!.sent);
    assert.ok(Math.max(...pieces) > READ_SIZE, `largest piece ${Math.max(...pieces)} bytes`);
    assert.equal(reads.places.taken, 0, 'the place is given back once the connection closed');
    // Where each body lies in what the client sent (put-client-main.ts's heads), and each read.
    const spans: Array<[number, number]> = [];
    let at = 0;
    for (const [i, size] of sizes.entries()) {
      at += Buffer.byteLength(`PUT /b${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n${i === sizes.length - 1 ? 'Connection: close\r\n' : ''}\r\n`);
      spans.push([at, at + size]);
      at += size;
    }
    const [seen] = [...readsOf.values()];
    let start = 0;
    for (const n of seen!) {
      const end = start + n;
      // A large read holds body bytes alone: the next request's head is read 64 KiB at a time, as node:http would.
      if (n > READ_SIZE) assert.ok(spans.some(([s, e]) => start >= s && end <= e), `a ${n}-byte read at ${start} reaches past its body`);
      start = end;
    }
    assert.equal(start, at);
  });

  it('a body not asked to read large comes in pieces of 64 KiB at most', async (t) => {
    const reads = new ClientReads();
    const pieces: number[] = [];
    const { port } = await handedServer(t, reads, hashing(reads, false, pieces));
    const [c] = await put(port, [[4 * 1024 * 1024]]);
    assert.deepEqual(c!.answered, c!.sent);
    assert.ok(Math.max(...pieces) <= READ_SIZE, `largest piece ${Math.max(...pieces)} bytes`);
    assert.equal(reads.places.taken, 0);
  });

  it(`keeps the bytes of connections read at once apart, and gives every place back`, async (t) => {
    const reads = new ClientReads();
    const pieces: number[] = [];
    let most = 0;
    const { port } = await handedServer(t, reads, hashing(reads, true, pieces, () => (most = Math.max(most, reads.places.taken))));
    const all = await put(port, Array.from({ length: LARGE_READERS + 4 }, (_, i) => [6 * 1024 * 1024 + i]));
    for (const c of all) assert.deepEqual(c.answered, c.sent);
    assert.ok(most >= 1 && most <= LARGE_READERS, `${most} connections read large at once`);
    assert.ok(Math.max(...pieces) > READ_SIZE);
    assert.equal(reads.places.taken, 0);
  });

  it('a PROXY header split across reads is read whole (the gate keeps copies, not the shared buffer)', async (t) => {
    const reads = new ClientReads();
    const refused: string[] = [];
    let firstRead: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (firstRead = resolve));
    const { port } = await handedServer(
      t,
      reads,
      (req, res) => res.end(req.socket.remoteAddress),
      (server) => {
        new ProxyProtocolGate(new TrustedPeers(['127.0.0.1']), 10_000, (s, _ip, why) => (refused.push(why), s.destroy()), 100).attach(server);
        // Told of the first read before the gate is: the client then sends the rest.
        server.prependListener('connection', (s: Socket) => s.once('data', () => firstRead()));
      },
    );
    const c = connect(port, '127.0.0.1');
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.write('PROXY TCP4 203.0.113.');
    await arrived;
    c.write('7 127.0.0.1 4444 8070\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await once(c, 'close');
    assert.deepEqual(refused, []);
    assert.match(got, /^HTTP\/1\.1 200[\s\S]*\r\n\r\n203\.0\.113\.7$/);
  });
});
