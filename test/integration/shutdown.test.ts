import assert from 'node:assert/strict';
import http from 'node:http';
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
