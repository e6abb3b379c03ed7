import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { rawRequest as raw } from '../support/raw-http.js';
import { startServer } from '../support/servers.js';

/**
 * Requests node:http accepts but undici will not send. Regression of issue 9: each was taken as
 * "not sent", failed over and charged to every node tried; three of them ejected every node.
 * (Probed on Node 20: of the shapes undici refuses, node:http itself already answers 400 to
 * control characters, bad names, methods and targets, and duplicate Content-Length; a
 * duplicate Host is the one that gets through. Anything else undici refuses is caught by the
 * `unsendable` outcome, tested in forward-unsendable.test.ts.)
 */
const SHAPES: Record<string, string> = {
  'two Host headers': 'GET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n',
  'two Host headers on an upload': 'PATCH /v2/a/blobs/uploads/u1 HTTP/1.1\r\nHost: a\r\nhost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc',
};

describe('a request the proxy cannot forward is the client\'s problem', () => {
  for (const [what, head] of Object.entries(SHAPES)) {
    it(`${what}, 10 times: 400 each, no node charged or ejected, another client unaffected`, async (t) => {
      const nodes = await Promise.all([0, 1, 2].map(() => startServer((_q, r) => r.end('ok'))));
      t.after(() => Promise.all(nodes.map((n) => n.close())));
      const lb = await startApp(nodes.map((n) => n.url), { health: { enabled: false, passive: { consecutiveFailures: 1 } } });
      t.after(() => lb.close());
      for (let i = 0; i < 10; i++) {
        const r = await raw(lb.url, head);
        assert.equal(r.status, 400, `attempt ${i}: ${r.text.slice(0, 80)}`);
      }
      for (const n of lb.app.nodes.all) {
        assert.equal(n.traffic.failures, 0, `${n.name} charged`);
        assert.equal(n.traffic.requests, 0, `${n.name} was never even tried`);
        assert.notEqual(n.state, 'unhealthy');
      }
      assert.equal((await send(`${lb.url}/v2/`)).status, 200, 'another client is served');
      const refused = lb.logs.requests().filter((l) => l.status === 400);
      assert.equal(refused.length, 10, 'each refusal has its routing line');
      assert.ok(refused.every((l) => l.error === 'REQUEST_NOT_FORWARDABLE' && l.node === null));
    });
  }

  it('answers with a registry-style JSON error naming the problem', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const r = await raw(lb.url, SHAPES['two Host headers']!);
    assert.equal(r.status, 400);
    const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'BAD_REQUEST');
    assert.match(body.errors[0]!.message, /more than one Host header/);
  });
});
