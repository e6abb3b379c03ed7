import assert from 'node:assert/strict';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { rawRequest } from '../support/raw-http.js';
import { startServer } from '../support/servers.js';

/**
 * Issue 10: routing decided on the raw path while Harbor's nginx and Go's routers read another
 * one. Each case is refused before a node is chosen; what is forwarded is what was classified.
 */
const REFUSED = ['/v2/../api/v2.0/users', '//service/token', '/%2e%2e/v2/', '/v2/library%2Fdemo/blobs/uploads/abc'];

it('refuses paths harbor-lb and a node could read differently, and forwards the normalized form of the rest', async (t) => {
  const seen: string[] = [];
  const node = await startServer((req, res) => {
    seen.push(req.url ?? '');
    res.end('ok');
  });
  t.after(() => node.close());
  const lb = await startApp([node.url], { health: { enabled: false, passive: { consecutiveFailures: 1 } } });
  t.after(() => lb.close());

  for (const path of REFUSED) {
    const r = await rawRequest(lb.url, `GET ${path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 400, `${path}: ${r.text.slice(0, 120)}`);
    const body = JSON.parse(r.body) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'BAD_REQUEST');
    assert.match(body.errors[0]!.message, /^harbor-lb cannot forward this request: the path /);
  }
  assert.deepEqual(seen, [], 'no node saw any of them');
  assert.equal(lb.app.nodes.all[0]!.traffic.requests, 0);
  const lines = lb.logs.requests();
  assert.deepEqual(
    lines.map((l) => [l.path, l.route, l.status, l.error, l.node]),
    REFUSED.map((p) => [p, 'other', 400, 'PATH_NOT_CANONICAL', null]),
  );

  // Same route once normalized: forwarded normalized, the query exactly as sent.
  const kept = await rawRequest(lb.url, 'GET /v2/library//app/manifests/%6catest?n=%2F..%2F HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n');
  assert.equal(kept.status, 200);
  const token = await rawRequest(lb.url, 'GET /service/token?scope=repository%3Alibrary%2Ftest%3Apull&service=harbor-registry HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n');
  assert.equal(token.status, 200);
  assert.deepEqual(seen, ['/v2/library/app/manifests/latest?n=%2F..%2F', '/service/token?scope=repository%3Alibrary%2Ftest%3Apull&service=harbor-registry']);
  assert.equal(lb.logs.requests().at(-2)!.route, 'v2');
});
