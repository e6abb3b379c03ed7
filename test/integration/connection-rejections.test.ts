import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

/** Sends raw bytes, optionally more later, and reads until the proxy closes the connection. */
function raw(url: string, first: string, more?: (s: net.Socket) => void): Promise<{ text: string; ms: number }> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect(Number(port), hostname, () => {
      sock.write(first);
      more?.(sock);
    });
    let text = '';
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => resolve({ text, ms: Date.now() - started }));
  });
}

async function setup(t: { after: (fn: () => unknown) => void }, listen: Record<string, unknown> = {}): Promise<StartedApp> {
  const node = await startServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  t.after(() => node.close());
  const lb = await startApp([node.url], { listen: listen as never });
  t.after(() => lb.close());
  return lb;
}

/** Regression of issue 10: requests node:http rejected left no trace in the log. */
describe('connection-level rejections are answered and logged', () => {
  it('an unparseable request: 400 with a registry-style body, one connection_rejected line with the parser code and the address', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, 'G\u0001T /v2/ HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match(r.text, /"code":"BAD_REQUEST"/);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.match(String(line.reason), /^HPE_/);
    assert.equal((line.client as { ip: string }).ip, '127.0.0.1');
    assert.equal(line.status, 400);
  });

  it('an HTTP/1.1 request without Host: 400 with registry JSON and a routing line; HTTP/1.0 without one is served', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, 'GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match(r.text, /"code":"BAD_REQUEST".*Host header/);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual([line!.status, line!.error, line!.attempts], [400, 'REQUEST_NOT_FORWARDABLE', 0]);
    const old = await raw(lb.url, 'GET /v2/ HTTP/1.0\r\n\r\n');
    assert.match(old.text, /^HTTP\/1\.1 200 /);
  });

  it('an expectation other than 100-continue: 417 with registry JSON and a routing line, before the body', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, 'POST /api/v2.0/x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 5\r\nConnection: close\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 417 /);
    assert.match(r.text, /"code":"UNSUPPORTED".*100-continue/);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual([line!.status, line!.error, line!.attempts], [417, 'EXPECTATION_FAILED', 0]);
  });

  it('a head over 64 KiB: 431, logged', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, `GET /v2/ HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 431 /);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.deepEqual([line.reason, line.status], ['HPE_HEADER_OVERFLOW', 431]);
  });

  it('CONNECT: 405, logged', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 405 /);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.deepEqual([line.reason, line.status], ['CONNECT', 405]);
    const metrics = await fetch(`${lb.adminUrl}/metrics`).then((m) => m.text());
    assert.match(metrics, /^harbor_lb_client_rejections_total\{reason="CONNECT"\} 1$/m);
  });

  it('bad chunk framing in an upload: the client gets 400 and the routing line says what it was, not CLIENT_GONE', async (t) => {
    const lb = await setup(t);
    const r = await raw(lb.url, 'PATCH /v2/a/blobs/uploads/u1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.equal(line.status, 400);
    assert.match(String(line.error), /^BAD_REQUEST_FRAMING: HPE_INVALID_CHUNK_SIZE$/);
    const rejected = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.equal(rejected.reason, 'HPE_INVALID_CHUNK_SIZE');
  });

  it('a slowloris head is cut at listen.headersTimeout, not up to 30 s later (node:http checks on an interval)', async (t) => {
    const lb = await setup(t, { headersTimeout: '1s' });
    let timer: NodeJS.Timeout | undefined;
    t.after(() => clearInterval(timer));
    // One byte of head every 200 ms, bounded: 100 bytes at most.
    const head = 'GET /v2/ HTTP/1.1\r\nHost: a\r\nX-Slow: ' + 'a'.repeat(80);
    let i = 0;
    const r = await raw(lb.url, head[i++]!, (s) => {
      timer = setInterval(() => (i < head.length && !s.destroyed ? s.write(head[i++]!) : clearInterval(timer)), 200);
    });
    assert.match(r.text, /^HTTP\/1\.1 408 /);
    assert.ok(r.ms < 3000, `cut after ${r.ms} ms against a 1 s timeout`);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected');
    assert.equal(line.status, 408);
  });
});
