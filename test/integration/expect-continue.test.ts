import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { deadPort, startServer } from '../support/servers.js';

const BODY = 3 * 1024 * 1024;

/** A node that reads upload bodies whole and answers 201 with the bytes it got. */
async function uploadNode(t: { after: (fn: () => unknown) => void }) {
  const state = { received: 0 };
  const node = await startServer((req, res) => {
    req.on('data', (c: Buffer) => (state.received += c.length));
    req.on('end', () => res.writeHead(201, { 'content-length': '0' }).end());
  });
  t.after(() => node.close());
  return { node, state };
}

interface Exchange {
  /** Everything the client read, as text. */
  text: string;
  /** Body bytes the client sent (only after a 100 Continue). */
  sent: number;
}

/**
 * As curl sends a large upload: the head with `Expect: 100-continue`, then the body only once a
 * 100 Continue came. Reads until the final answer's head is in and the connection is closed, or
 * (kept open) a 201 came.
 */
function expectingUpload(port: number, path: string): Promise<Exchange> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let sent = 0;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (sent === 0 && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = BODY;
        s.write(Buffer.alloc(BODY, 1));
      }
      if (/\r\n\r\nHTTP\/1\.1 201 /.test(text) && text.endsWith('\r\n\r\n')) s.end();
    });
    s.on('close', () => resolve({ text, sent }));
    s.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY}\r\nExpect: 100-continue\r\n\r\n`);
  });
}

// Found in review (issue 20): node:http answered every Expect: 100-continue itself at once, so a
// client was told to send a body of gigabytes that harbor-lb was about to refuse unread.
describe('Expect: 100-continue', () => {
  it('an upload gets its 100 Continue once a node is to get the body, then the node gets every byte', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const r = await expectingUpload(Number(new URL(lb.url).port), '/v2/library/a/blobs/uploads/u1?digest=sha256:1');
    assert.match(r.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    assert.equal(state.received, BODY);
  });

  it('a request harbor-lb refuses is answered before the client sends its body: no 100 Continue, and the connection is closed', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const r = await expectingUpload(Number(new URL(lb.url).port), '/v2/library/a/../b/blobs/uploads/u1');
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
    const r = await expectingUpload(Number(new URL(lb.url).port), '/v2/library/a/blobs/uploads/u1?digest=sha256:1');
    assert.match(r.text, /^HTTP\/1\.1 50[23] /);
    assert.equal(r.sent, 0);
  });
});
