import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { rawRequest } from '../support/raw-http.js';
import { startServer } from '../support/servers.js';

/**
 * Issue 10, through a real listener and a real node: an untrusted client's forwarding-style
 * headers never arrive, and its Connection header cannot take the public Host away (the node
 * then saw its own address and built realms and Locations that bypass the proxy).
 */
it('the node sees the public Host and only the proxy\'s forwarding headers', async (t) => {
  let seen: IncomingHttpHeaders | undefined;
  const node = await startServer((req, res) => {
    seen = req.headers;
    res.end('ok');
  });
  t.after(() => node.close());
  const lb = await startApp([node.url]);
  t.after(() => lb.close());
  const r = await rawRequest(
    lb.url,
    'GET /v2/ HTTP/1.1\r\nHost: hub.example.com:8070\r\nConnection: close, X-Custom, host, authorization\r\nX-Custom: 1\r\n' +
      'Authorization: Bearer t\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /evil\r\nX-Original-URL: /api/v2.0/users\r\n' +
      'X-Rewrite-URL: /api/v2.0/users\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n\r\n',
  );
  assert.equal(r.status, 200);
  assert.equal(seen?.host, 'hub.example.com:8070');
  assert.equal(seen?.authorization, 'Bearer t');
  for (const gone of ['x-custom', 'x-forwarded-port', 'x-forwarded-prefix', 'x-original-url', 'x-rewrite-url', 'forwarded', 'true-client-ip']) {
    assert.equal(seen?.[gone], undefined, `${gone} reached the node`);
  }
  assert.equal(seen?.['x-real-ip'], '127.0.0.1');
  assert.equal(seen?.['x-forwarded-for'], '127.0.0.1');
});
