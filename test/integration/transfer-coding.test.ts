import assert from 'node:assert/strict';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { rawRequest } from '../support/raw-http.js';
import { startServer } from '../support/servers.js';

const CHUNKED_BODY = '5\r\nhello\r\n0\r\n\r\n';

/**
 * Issue 10: `Transfer-Encoding: gzip, chunked` was forwarded as plain chunked, so the node read
 * gzip bytes as the body. RFC 9112 6.1: a transfer coding the server does not understand is a 501.
 */
it('answers 501 to transfer codings other than chunked, before any node, and forwards plain chunked', async (t) => {
  const seen: string[] = [];
  const node = await startServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push(body);
      res.end('ok');
    });
  });
  t.after(() => node.close());
  const lb = await startApp([node.url], { health: { enabled: false, passive: { consecutiveFailures: 1 } } });
  t.after(() => lb.close());
  const head = (te: string) => `PATCH /v2/library/a/blobs/uploads/u1 HTTP/1.1\r\nHost: hub\r\n${te}\r\nConnection: close\r\n\r\n${CHUNKED_BODY}`;

  for (const te of ['Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked', 'Transfer-Encoding: identity, chunked']) {
    const r = await rawRequest(lb.url, head(te));
    assert.equal(r.status, 501, `${te}: ${r.text.slice(0, 120)}`);
    const body = JSON.parse(r.body) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'UNSUPPORTED');
    assert.match(body.errors[0]!.message, /transfer coding "(gzip|identity), chunked" is not implemented/);
  }
  assert.equal(lb.app.nodes.all[0]!.traffic.requests, 0, 'no node was involved');
  assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
  const lines = lb.logs.requests();
  assert.equal(lines.length, 3);
  assert.ok(lines.every((l) => l.status === 501 && l.error === 'TRANSFER_CODING_NOT_IMPLEMENTED' && l.node === null));

  const ok = await rawRequest(lb.url, head('Transfer-Encoding: Chunked'));
  assert.equal(ok.status, 200, 'chunked alone, in any case, is forwarded');
  assert.deepEqual(seen, ['hello']);
});
