import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, it } from 'node:test';
import type { BufferReclaimer } from '../../src/util/buffer-reclaimer.js';
import { startApp, type StartedApp } from '../support/app.js';
import { startServer, type TestServer } from '../support/servers.js';

const MiB = 1024 * 1024;
const BODY = Buffer.alloc(4 * MiB, 0x61);

/** Counts what the proxy reports as short-lived body buffers. */
class CountingReclaimer implements BufferReclaimer {
  bytes = 0;
  freed = 0;
  allocated(bytes: number): number {
    this.bytes += bytes;
    return 0;
  }
  released(bytes: number): void {
    this.freed += bytes;
  }
  close(): void {}
}

let node: TestServer;
let lb: StartedApp;
const reclaimer = new CountingReclaimer();

before(async () => {
  node = await startServer((req, res) => {
    let received = 0;
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => {
      received += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      if (req.method === 'PUT') return void res.writeHead(201, { 'content-length': 0, 'x-received': received, 'x-sha256': hash.digest('hex') }).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length }).end(BODY);
    });
  });
  lb = await startApp([node.url], {}, { reclaimer });
});

after(async () => {
  await lb?.close();
  await node?.close();
});

it("reports an upload's body buffers, which node:http allocates per read, and frees each once the node's socket wrote it", async () => {
  const before = reclaimer.bytes;
  const freedBefore = reclaimer.freed;
  // Bytes that differ along the body: a piece freed before its write was done would arrive changed.
  const body = Buffer.alloc(BODY.length);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32BE(i, i);
  const digest = createHash('sha256').update(body).digest('hex');
  const res = await fetch(`${lb.url}/v2/r/blobs/uploads/u1?digest=sha256:00`, { method: 'PUT', body });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('x-received'), String(BODY.length));
  assert.equal(res.headers.get('x-sha256'), digest, 'every byte arrived as sent');
  assert.equal(reclaimer.bytes - before, BODY.length);
  // The pieces are the whole of their memory (node:http's copies), so every one is freed: no collection is asked for them.
  assert.equal(reclaimer.freed - freedBefore, BODY.length, 'every piece freed once written, not left to a collection');
});

it("reports a response's body buffers when undici read them, and not the read pool's reused ones", async () => {
  // Only GETs and HEADs go through the read pool: an OPTIONS goes through undici.
  let before = reclaimer.bytes;
  const viaUndici = await fetch(`${lb.url}/api/v2.0/systeminfo/big`, { method: 'OPTIONS' });
  assert.equal((await viaUndici.arrayBuffer()).byteLength, BODY.length);
  assert.equal(reclaimer.bytes - before, BODY.length);

  for (const path of [`/v2/r/blobs/sha256:${'a'.repeat(64)}`, '/api/v2.0/systeminfo/big']) {
    before = reclaimer.bytes;
    const read = await fetch(`${lb.url}${path}`);
    assert.equal((await read.arrayBuffer()).byteLength, BODY.length);
    assert.equal(reclaimer.bytes - before, 0, `a GET of ${path} through the read pool reads into buffers it reuses`);
  }
});
