import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

/** Every byte value, in bodies that end their response at the end of a turn (forward.ts): as a string, and as a Buffer. */
const BODIES = new Map<string, Buffer>([
  ['small', Buffer.from(Array.from({ length: 3 * 256 + 7 }, (_, i) => (i * 7) % 256))],
  ['larger', Buffer.from(Array.from({ length: 12 * 1024 + 5 }, (_, i) => (i * 13) % 256))],
]);

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
  it('reaches the client byte for byte, every byte value, whether its copy is a string (up to 4 KiB) or a Buffer', async (t) => {
    const node = await startServer((req, res) => {
      const body = BODIES.get(req.url!.split('/').pop()!);
      if (!req.url!.startsWith('/v2/library/a/manifests/') || body === undefined) return void res.writeHead(200).end('{}');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    });
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    t.after(() => lb.close());

    for (const [tag, body] of BODIES) {
      const r = await get(`${lb.url}/v2/library/a/manifests/${tag}`);
      assert.equal(r.status, 200, tag);
      assert.ok(r.body.equals(body), `${tag}: ${r.body.length} bytes of ${body.length}, the same: ${r.body.equals(body)}`);
    }
  });
});
