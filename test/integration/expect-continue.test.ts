import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { expectingUpload } from '../support/expecting-upload.js';
import { send } from '../support/http-client.js';
import { deadPort, startServer } from '../support/servers.js';

const BODY = Buffer.alloc(3 * 1024 * 1024, 1);

/** A node that reads upload bodies whole and answers 201 with the bytes it got. */
async function uploadNode(t: { after: (fn: () => unknown) => void }) {
  const state = { received: 0, requests: 0 };
  const node = await startServer((req, res) => {
    state.requests++;
    req.on('data', (c: Buffer) => (state.received += c.length));
    req.on('end', () => res.writeHead(201, { 'content-length': '0' }).end());
  });
  t.after(() => node.close());
  return { node, state };
}

// Found in review (issue 20): node:http answered every Expect: 100-continue itself at once, so a
// client was told to send a body of gigabytes that harbor-lb was about to refuse unread.
describe('Expect: 100-continue', () => {
  it('an upload gets its 100 Continue once a node is to get the body, then the node gets every byte', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const r = await expectingUpload(lb.url, '/v2/library/a/blobs/uploads/u1?digest=sha256:1', BODY);
    assert.match(r.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    assert.equal(state.received, BODY.length);
  });

  it('a request harbor-lb refuses is answered before the client sends its body: no 100 Continue, and the connection is closed', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const r = await expectingUpload(lb.url, '/v2/library/a/../b/blobs/uploads/u1', BODY);
    assert.match(r.text, /^HTTP\/1\.1 400 /, 'the refusal is the first thing the client reads');
    assert.match(r.text, /connection: close/i);
    assert.equal(r.sent, 0, 'the client never sent its body');
    assert.equal(state.received, 0);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual([line!.status, line!.error], [400, 'PATH_NOT_CANONICAL']);
  });

  it('an upload no node can take is answered without the client sending its body', async (t) => {
    const lb = await startApp([`http://127.0.0.1:${await deadPort()}`], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const r = await expectingUpload(lb.url, '/v2/library/a/blobs/uploads/u1?digest=sha256:1', BODY);
    assert.match(r.text, /^HTTP\/1\.1 50[23] /);
    assert.equal(r.sent, 0);
  });

  it('requests pipelined behind an answer that closed the connection are not served (RFC 9112 9.6)', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    // The body sent without waiting for 100 (RFC 9110 allows it), a DELETE pipelined behind.
    const text = await new Promise<string>((resolve) => {
      const s = net.connect({ port: Number(new URL(lb.url).port), host: '127.0.0.1', allowHalfOpen: true });
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('end', () => s.end());
      s.on('close', () => resolve(got));
      s.write(
        'PUT /v2/library/a/../b/blobs/uploads/u1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n0123456789' +
          'DELETE /v2/library/a/manifests/sha256:abc HTTP/1.1\r\nHost: x\r\n\r\n',
      );
    });
    assert.match(text, /^HTTP\/1\.1 400 [^]*connection: close/i);
    assert.equal(text.match(/HTTP\/1\.1 /g)!.length, 1, 'one answer: the connection closed after it');
    const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { workers: Array<{ requests: number }> };
    assert.equal(status.workers[0]!.requests, 1, 'the DELETE was never taken up');
    assert.equal(state.received, 0);
    assert.equal(state.requests, 0, 'the node saw nothing');
  });

  it('a request without a body that sends Expect gets its 100 Continue at once and keeps its connection', async (t) => {
    const { node } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const text = await new Promise<string>((resolve) => {
      const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if ((got.match(/HTTP\/1\.1 201 /g) ?? []).length === 2 && got.endsWith('\r\n\r\n')) s.end();
      });
      s.on('close', () => resolve(got));
      s.write('DELETE /v2/library/a/blobs/uploads/e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\nDELETE /v2/library/a/blobs/uploads/f HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 [^]*keep-alive[^]*HTTP\/1\.1 201 /i);
  });

  it('an upload waiting for a node connection gets no 100 Continue until one is free', async (t) => {
    const held: Array<() => void> = [];
    let received = 0;
    const node = await startServer((req, res) => {
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => (req.url!.includes('hold') ? held.push(() => res.writeHead(201, { 'content-length': '0' }).end()) : res.writeHead(201, { 'content-length': '0' }).end()));
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { health: { enabled: false }, proxy: { maxUploadConnectionsPerNode: 1 }, limits: { nodeShare: 1 } });
    t.after(() => lb.close());
    // The node's one upload connection is taken by an upload it sits on.
    const first = expectingUpload(lb.url, '/v2/library/a/blobs/uploads/hold?digest=sha256:1', BODY);
    for (let i = 0; i < 500 && held.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(held.length, 1, 'the first upload holds the connection');

    const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    let got = '';
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got === 'HTTP/1.1 100 Continue\r\n\r\n') s.write(BODY);
      if (/HTTP\/1\.1 201 [^]*\r\n\r\n$/.test(got)) s.end();
    });
    s.write(`PUT /v2/library/a/blobs/uploads/u2?digest=sha256:2 HTTP/1.1\r\nHost: x\r\nContent-Length: ${BODY.length}\r\nExpect: 100-continue\r\n\r\n`);
    const queued = async () => (JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ queued: number }> }).nodes[0]!.queued;
    for (let i = 0; i < 200 && (await queued()) === 0; i++);
    assert.equal(await queued(), 1, 'the second upload waits for the connection');
    assert.equal(got, '', 'and has not been told to send its body');

    held[0]!();
    assert.equal((await first).status, 201);
    await closed;
    assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    assert.equal(received, 2 * BODY.length);
  });
});
