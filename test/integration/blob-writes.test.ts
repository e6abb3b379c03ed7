import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startServer, type TestServer } from '../support/servers.js';

const MiB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/**
 * undici hands the forwarder an empty rest of the node's data after every resume (once per 64 KiB
 * of a pulled blob). Written to the client, each was a write() system call of nothing: half of all
 * writes on a pull.
 */
describe('a pulled blob goes to the client in the chunks read from the node', () => {
  let node: TestServer;
  let lb: StartedApp;

  before(async () => {
    node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 8 * MiB });
      let left = 8 * MiB;
      const pump = () => {
        while (left > 0) {
          left -= CHUNK.length;
          if (!res.write(CHUNK)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    lb = await startApp([node.url]);
  });

  after(async () => {
    await lb?.close();
    await node?.close();
  });

  it('writes no empty chunk to the client, and every byte arrives', async () => {
    const writes: number[] = [];
    const original = http.ServerResponse.prototype.write;
    http.ServerResponse.prototype.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
      if (this.req.url?.startsWith('/v2/library/a/blobs/')) writes.push((chunk as Buffer | string).length);
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof original;
    let received = 0;
    try {
      received = await new Promise<number>((resolve, reject) => {
        http
          .get(`${lb.url}/v2/library/a/blobs/sha256:${'0'.repeat(64)}`, { agent: false }, (res) => {
            let n = 0;
            res.on('data', (c: Buffer) => (n += c.length));
            res.on('end', () => resolve(n));
            res.on('error', reject);
          })
          .on('error', reject);
      });
    } finally {
      http.ServerResponse.prototype.write = original;
    }
    assert.equal(received, 8 * MiB);
    assert.ok(writes.length >= 8 * MiB / CHUNK.length / 2, `the body went out in ${writes.length} writes`);
    assert.equal(writes.filter((n) => n === 0).length, 0, `${writes.filter((n) => n === 0).length} empty writes among ${writes.length}`);
  });
});
