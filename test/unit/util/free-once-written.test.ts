import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { freeingWrites, freeOnceWritten } from '../../../src/util/free-once-written.js';

/** A loopback connection whose far end reads only when told to. */
async function connection(t: { after: (fn: () => unknown) => void }): Promise<{ near: Socket; far: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const near = connect(port, '127.0.0.1');
  const [far] = (await once(server, 'connection')) as [Socket];
  await once(near, 'connect');
  far.pause();
  t.after(() => {
    near.destroy();
    far.destroy();
    server.close();
  });
  return { near, far };
}

/** A piece that is the whole of its memory, as node:http's copies of a body read are. */
function piece(seed: number, size = 64 * 1024): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32BE((seed * size + i) >>> 0, i);
  return b;
}

describe('freeOnceWritten: a body piece freed once a socket wrote it', () => {
  it('keeps each piece while its write waits for the far end, frees it once written, and every byte arrives as sent', async (t) => {
    const { near, far } = await connection(t);
    freeingWrites(near);
    let freed = 0;
    const pieces = Array.from({ length: 128 }, (_, i) => piece(i)); // 8 MiB: far more than the socket buffers hold
    const sent = createHash('sha256');
    for (const p of pieces) sent.update(p);
    const expected = sent.digest('hex');
    for (const p of pieces) {
      assert.equal(freeOnceWritten(p, (n) => (freed += n)), true);
      near.write(p);
    }
    await new Promise((resolve) => setImmediate(resolve));
    const waiting = pieces.filter((p) => p.byteLength > 0).length;
    assert.ok(waiting > 0 && freed < 128 * 64 * 1024, 'pieces whose write waits are kept');
    near.end();
    const got = createHash('sha256');
    let bytes = 0;
    far.on('data', (c: Buffer) => {
      got.update(c);
      bytes += c.length;
    });
    far.resume();
    await once(far, 'end');
    assert.equal(bytes, 128 * 64 * 1024);
    assert.equal(got.digest('hex'), expected, 'every byte as sent: nothing was freed before it was written');
    if (near.writableLength > 0 || !near.writableFinished) await once(near, 'finish');
    assert.equal(freed, 128 * 64 * 1024, 'every piece freed, its bytes reported');
    assert.ok(pieces.every((p) => p.byteLength === 0), 'their memory released');
  });

  it('marks only a buffer that is the whole of its memory, and frees nothing unmarked', async (t) => {
    const big = Buffer.alloc(128 * 1024, 1);
    assert.equal(freeOnceWritten(big.subarray(0, 64 * 1024), () => {}), false, 'a slice of a larger buffer');
    assert.equal(freeOnceWritten(Buffer.from('small'), () => {}), false, 'a piece of the shared pool');
    assert.equal(freeOnceWritten(Buffer.alloc(0), () => {}), false, 'nothing to free');
    const { near, far } = await connection(t);
    freeingWrites(near);
    const unmarked = piece(1);
    let called = false;
    near.write(unmarked, () => (called = true));
    far.resume();
    while (!called) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(unmarked.byteLength, 64 * 1024, 'an unmarked buffer is left alone');
    assert.ok(called, "the writer's own callback still comes");
  });

  it('on a socket destroyed with pieces in flight and queued, frees each only once its write is over, and what arrived is as sent', async (t) => {
    const { near, far } = await connection(t);
    near.on('error', () => {});
    far.on('error', () => {});
    freeingWrites(near);
    let freed = 0;
    let called = 0;
    const pieces = Array.from({ length: 256 }, (_, i) => piece(i)); // 16 MiB: some in the kernel, some in libuv, the rest queued
    for (const p of pieces) {
      freeOnceWritten(p, (n) => (freed += n));
      // As undici writes them: corked with a head, so queued pieces go out together (writev).
      near.cork();
      near.write('x', 'latin1');
      near.write(p, () => called++);
      near.uncork();
    }
    const received: Buffer[] = [];
    far.on('data', (c: Buffer) => received.push(c));
    far.resume();
    await once(far, 'data');
    far.pause();
    assert.ok(pieces.some((p) => p.byteLength > 0), 'pieces still being written are kept');
    near.destroy();
    for (let i = 0; i < 100_000 && called < pieces.length; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(called, pieces.length, "every writer's callback came");
    far.resume();
    if (!far.readableEnded) await Promise.race([once(far, 'end'), once(far, 'close')]);
    const got = Buffer.concat(received);
    const sent = Buffer.concat(Array.from({ length: 256 }, (_, i) => Buffer.concat([Buffer.from('x'), piece(i)])));
    assert.ok(got.equals(sent.subarray(0, got.length)), 'what arrived is as sent');
    assert.equal(freed, 256 * 64 * 1024, 'every piece freed once its write was over, done or failed');
  });
});
