import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

/** Every byte value, in a body small enough to end its response at the end of a turn (forward.ts). */
const EVERY_BYTE = Buffer.from(Array.from({ length: 3 * 256 + 7 }, (_, i) => (i * 7) % 256));

function get(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('a small answer, ended with the turn', () => {
  it('reaches the client byte for byte, every byte value, with a length and chunked', async (t) => {
    const node = await startServer((req, res) => {
      if (!req.url!.startsWith('/v2/library/a/manifests/')) return void res.writeHead(200).end('{}');
      if (req.url!.endsWith('/chunked')) {
        // No length: node:http sends it chunked, in two pieces.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(EVERY_BYTE.subarray(0, 100));
        res.end(EVERY_BYTE.subarray(100));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': EVERY_BYTE.length });
      res.end(EVERY_BYTE);
    });
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    t.after(() => lb.close());

    for (const tag of ['length', 'chunked']) {
      const r = await get(`${lb.url}/v2/library/a/manifests/${tag}`);
      assert.equal(r.status, 200, tag);
      assert.ok(r.body.equals(EVERY_BYTE), `${tag}: ${r.body.length} bytes of ${EVERY_BYTE.length}, the same: ${r.body.equals(EVERY_BYTE)}`);
    }
  });
});
