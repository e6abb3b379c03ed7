import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { createLoggers } from '../../src/log/loggers.js';
import { ClientLimits } from '../../src/proxy/client-limits.js';
import { ConnectionGuard } from '../../src/proxy/connection-guard.js';
import { TrustedPeers } from '../../src/proxy/trusted-peers.js';
import { startApp } from '../support/app.js';
import { LogSink } from '../support/log-sink.js';
import { makeServerCert } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';
import { send } from '../support/http-client.js';
import { FakeClock } from '../support/fake-clock.js';
import { startServer } from '../support/servers.js';

/** A node whose answer to GET /slow waits until the test releases it (half the body first). */
async function slowNode(t: { after: (fn: () => unknown) => void }) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const began = new Promise<void>((r) => (started = r));
  const node = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': 200_000 });
    res.write(Buffer.alloc(100_000, 1));
    started();
    void released.then(() => res.end(Buffer.alloc(100_000, 2)));
  });
  t.after(() => node.close());
  return { node, release, began };
}

function download(url: string): Promise<{ bytes: number; complete: boolean }> {
  return new Promise((resolve) => {
    http
      .get(url, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('error', () => {});
        res.on('close', () => resolve({ bytes, complete: res.complete }));
      })
      .on('error', () => resolve({ bytes: 0, complete: false }));
  });
}

describe('graceful shutdown', () => {
  it('stops accepting, lets the request in flight finish, then closes', async (t) => {
    const { node, release, began } = await slowNode(t);
    const lb = await startApp([node.url]);
    const pending = download(`${lb.url}/v2/r/blobs/sha256:1`);
    await began;
    const closing = lb.app.close(60_000);
    await assert.rejects(send(`${lb.url}/v2/`), /ECONNREFUSED/, 'no new connections while draining');
    const line = await lb.logs.waitFor((l) => l.event === 'draining_connections');
    assert.equal(line.inflight, 1);
    release();
    assert.deepEqual(await pending, { bytes: 200_000, complete: true });
    await closing;
  });

  it('a pull that ends while its last bytes wait for a slow reader is delivered whole before the connections close', async (t) => {
    // A client reading about 8 MB/s (curl --limit-rate 8M); harbor-lb is told to stop a third of the way in.
    const SIZE = 20 << 20;
    const body = Buffer.alloc(SIZE, 7);
    // Streamed from storage in 64 KiB reads, as a registry does.
    const node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': SIZE });
      void pipeline(Readable.from((function* () {
        for (let at = 0; at < SIZE; at += 64 << 10) yield body.subarray(at, at + (64 << 10));
      })()), res).catch(() => {});
    });
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    const socket = connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => socket.destroy());
    let got = 0;
    let closing: Promise<void> | undefined;
    socket.on('data', (c: Buffer) => {
      got += c.length;
      if (got > SIZE / 3) closing ??= lb.app.close(60_000);
      socket.pause();
      setTimeout(() => socket.resume(), 8);
    });
    const all = new Promise<number>((resolve) => socket.on('close', () => resolve(got)));
    socket.write('GET /v2/r/blobs/sha256:big HTTP/1.1\r\nhost: x\r\n\r\n');
    const total = await all;
    await closing;
    assert.ok(total > SIZE && total < SIZE + 2000, `the whole body arrived: ${total} bytes with the head, for a body of ${SIZE}`);
  });

  it('closing idle connections at shutdown spares one whose answer ended with bytes still waiting for its client', async (t) => {
    const guard = new ConnectionGuard({ limits: new ClientLimits(0), maxConnections: 100, connectionsPerClient: 0, trusted: new TrustedPeers([]), logger: createLoggers({ level: 'error', format: 'json', destination: new LogSink() }).logger, clock: new FakeClock(), tls: false });
    const SIZE = 32 << 20;
    // An answer much larger than the kernel's buffers, ended at once: most of it waits in the process for the client.
    let ended!: () => void;
    const answered = new Promise<void>((resolve) => (ended = resolve));
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': SIZE });
      res.end(Buffer.alloc(SIZE, 7));
      ended();
    });
    guard.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => (server.closeAllConnections(), server.close()));
    const port = (server.address() as { port: number }).port;
    const idle = connect(port, '127.0.0.1');
    const slow = connect(port, '127.0.0.1');
    t.after(() => (idle.destroy(), slow.destroy()));
    await Promise.all([once(idle, 'connect'), once(slow, 'connect')]);
    slow.pause();
    slow.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await answered;
    const idleClosed = once(idle, 'close');
    guard.closeIdle();
    await idleClosed;
    assert.equal(slow.destroyed, false, 'the slow reader is still connected');
    let got = 0;
    const read = new Promise<void>((resolve) => {
      slow.on('data', (c: Buffer) => (got += c.length) > SIZE && resolve());
      slow.on('close', () => resolve());
    });
    slow.resume();
    await read;
    assert.ok(got > SIZE, `and gets the whole answer (${got} bytes of ${SIZE} and the head)`);
  });

  it('a TLS request from a trusted proxy in flight at the stop is let finish', async (t) => {
    const { node, release, began } = await slowNode(t);
    const tmp = makeTempDir('shutdown-tls');
    t.after(tmp.remove);
    const cert = makeServerCert(join(tmp.dir, 'pki'));
    const lb = await startApp([node.url], { listen: { tls: { cert: cert.certFile, key: cert.keyFile }, trustedProxies: ['127.0.0.1'] } as never });
    const got = new Promise<{ bytes: number; complete: boolean }>((resolve) => {
      https
        .get(`${lb.url}/v2/r/blobs/sha256:3`, { agent: false, ca: readFileSync(cert.caFile), servername: 'localhost' }, (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('error', () => {});
          res.on('close', () => resolve({ bytes, complete: res.complete }));
        })
        .on('error', () => resolve({ bytes: 0, complete: false }));
    });
    await began;
    const closing = lb.app.close(60_000);
    await lb.logs.waitFor((l) => l.event === 'draining_connections');
    release();
    assert.deepEqual(await got, { bytes: 200_000, complete: true });
    await closing;
  });

  it('cuts what is still running when the grace period ends', async (t) => {
    const { node, release, began } = await slowNode(t);
    t.after(release);
    const clock = new FakeClock();
    const lb = await startApp([node.url], {}, { clock });
    const pending = download(`${lb.url}/v2/r/blobs/sha256:2`);
    await began;
    const closing = lb.app.close(30_000);
    await lb.logs.waitFor((l) => l.event === 'draining_connections');
    clock.advance(30_000);
    await closing;
    const got = await pending;
    assert.equal(got.complete, false, 'the client sees a cut response, never a short complete one');
    assert.ok(got.bytes < 200_000);
  });
});
