import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

const BODY = randomBytes(16 * 1024 * 1024);
const SHA = createHash('sha256').update(BODY).digest('hex');

/** A GET through harbor-lb; `pauseMs`: the client reads nothing that long after the head. */
function get(url: string, pauseMs = 0): Promise<{ status: number; bytes: number; sha: string; cut: boolean }> {
  return new Promise((resolve) => {
    http
      .get(url, { agent: false }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.pause();
        setTimeout(() => {
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            hash.update(c);
          });
          res.resume();
        }, pauseMs);
        res.on('close', () => resolve({ status: res.statusCode!, bytes, sha: hash.digest('hex'), cut: !res.complete }));
      })
      .on('error', () => resolve({ status: 0, bytes: 0, sha: '', cut: true }));
  });
}

describe("the node's time limits (proxy.headersTimeout, proxy.idleTimeout)", () => {
  it('a node that stops in the middle of its answer for idleTimeout: the client sees a cut, the line says why', async (t) => {
    const node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': BODY.length });
      res.write(BODY.subarray(0, 1024));
      // ...and nothing more.
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { proxy: { idleTimeout: '300ms' } });
    t.after(() => lb.close());
    const r = await get(`${lb.url}/v2/lib/a/blobs/b1`);
    assert.deepEqual([r.status, r.bytes, r.cut], [200, 1024, true]);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, 'NODE_CUT_RESPONSE: UND_ERR_BODY_TIMEOUT');
  });

  it('a client that reads nothing for longer than idleTimeout is not the node stopping: it gets the whole answer', async (t) => {
    const node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': BODY.length });
      res.end(BODY);
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { proxy: { idleTimeout: '300ms' } });
    t.after(() => lb.close());
    const r = await get(`${lb.url}/v2/lib/a/manifests/big`, 1_500);
    assert.deepEqual([r.status, r.bytes, r.sha, r.cut], [200, BODY.length, SHA, false]);
  });

  it('a node that sends no head within headersTimeout: the GET goes to another node', async (t) => {
    const hung = await startServer(() => {
      // Never answers.
    });
    const ok = await startServer((_req, res) => res.end('{}'));
    t.after(() => Promise.all([hung.close(), ok.close()]));
    const lb = await startApp([hung.url, ok.url], { proxy: { headersTimeout: '300ms' }, balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    const answers = await Promise.all([get(`${lb.url}/v2/`), get(`${lb.url}/v2/`)]);
    assert.deepEqual(answers.map((a) => a.status), [200, 200]);
    const lines = await lb.logs.waitForRequests(2);
    assert.ok(lines.some((l) => l.reason === 'retried' && l.attempts === 2), JSON.stringify(lines));
  });
});
