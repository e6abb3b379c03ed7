import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startServer } from '../support/servers.js';

const PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

it('a request id and a trace follow each request: to the node, back to the client, into the routing line', async (t) => {
  const seen: IncomingHttpHeaders[] = [];
  // A node that echoes an id of its own, as some do: the client still gets the one the node was sent.
  const node = await startServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'x-request-id': 'node-made', 'content-length': 2 });
    res.end('ok');
  });
  t.after(() => node.close());
  const lb = await startApp([node.url]);
  t.after(() => lb.close());

  const own = await send(`${lb.url}/v2/lib/a/blobs/sha256:aa`, { headers: { 'x-request-id': 'ci-job-42', traceparent: PARENT, tracestate: 'vendor=1' } });
  const none = await send(`${lb.url}/v2/lib/a/manifests/v1`);
  const spoofy = await send(`${lb.url}/v2/`, { headers: { 'x-request-id': 'has space' } });
  // harbor-lb's own answer (a path it refuses) carries one too.
  const refused = await send(`${lb.url}/v2/lib/%zz/manifests/x`);
  const lines = await lb.logs.waitForRequests(4);

  assert.equal(own.headers['x-request-id'], 'ci-job-42');
  assert.equal(seen[0]!['x-request-id'], 'ci-job-42');
  assert.equal(seen[0]!.traceparent, PARENT);
  assert.equal(seen[0]!.tracestate, 'vendor=1');
  assert.equal(lines[0]!.requestId, 'ci-job-42');
  assert.equal(lines[0]!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');

  // No id: harbor-lb's own, the same to the node, the client and the line; a new trace.
  assert.equal(none.headers['x-request-id'], lines[1]!.reqId);
  assert.equal(seen[1]!['x-request-id'], lines[1]!.reqId);
  assert.equal(lines[1]!.requestId, lines[1]!.reqId);
  assert.match(String(seen[1]!.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  assert.equal(String(seen[1]!.traceparent).slice(3, 35), lines[1]!.traceId);

  assert.equal(spoofy.headers['x-request-id'], lines[2]!.reqId, 'an id that is not well formed is replaced');
  assert.equal(seen[2]!['x-request-id'], lines[2]!.reqId);

  assert.equal(refused.status, 400);
  assert.equal(refused.headers['x-request-id'], lines[3]!.reqId);
  assert.equal(lines[3]!.requestId, lines[3]!.reqId);
});
