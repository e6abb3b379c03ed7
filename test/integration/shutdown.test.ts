import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
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

  it('an answer already ended, its last bytes still waiting for a client that does not read, is delivered whole when harbor-lb stops', async (t) => {
    const SIZE = 4 << 20;
    const node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': SIZE });
      res.end(Buffer.alloc(SIZE, 7));
    });
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    const socket = connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    // Nothing read: what harbor-lb cannot hand the kernel waits in its own.
    socket.pause();
    let got = 0;
    socket.on('data', (c: Buffer) => (got += c.length));
    const all = new Promise<number>((resolve) => socket.on('close', () => resolve(got)));
    socket.write('GET /v2/r/blobs/sha256:big HTTP/1.1\r\nhost: x\r\n\r\n');
    // harbor-lb ended the answer (its routing line): no request is in flight when it is told to stop.
    await lb.logs.waitForRequests(1);
    const closing = lb.app.close(60_000);
    socket.resume();
    const total = await all;
    await closing;
    assert.ok(total > SIZE && total < SIZE + 2000, `the whole body arrived: ${total} bytes with the head, for a body of ${SIZE}`);
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
