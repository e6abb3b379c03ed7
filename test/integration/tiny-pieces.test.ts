import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { FEW_BYTE_PIECES, FEW_BYTES_JUDGED_AFTER, MOSTLY_FRAMING, PIECES_PER_WINDOW, TOO_MANY_PIECES } from '../../src/proxy/tiny-pieces.js';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { startServer } from '../support/servers.js';

/** A node that reads upload bodies whole and answers 201 with the bytes it got. */
async function uploadNode(t: { after: (fn: () => unknown) => void }) {
  const state: { received: number; progress?: () => void } = { received: 0 };
  const node = await startServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      state.received += c.length;
      state.progress?.();
    });
    req.on('end', () => {
      const body = JSON.stringify({ received: n });
      res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  t.after(() => node.close());
  return { node, state };
}

interface Reply {
  /** Everything the client read, as text. */
  text: string;
  /** harbor-lb ended the connection with a FIN (not a reset). */
  ended: boolean;
}

/** The head of a chunked PATCH to upload `upload`, with `extra` header lines. */
const chunkedHead = (upload: string, extra = ''): Buffer =>
  Buffer.from(`PATCH /v2/library/a/blobs/uploads/${upload} HTTP/1.1\r\nHost: x\r\n${extra}Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);

/** `chunk` framed as a chunk `count` times, one after another (no last chunk). */
const framed = (chunk: Buffer, count: number): Buffer => {
  const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  return Buffer.concat(Array.from({ length: count }, () => frame));
};

const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * Sends a chunked upload whose body is `chunk` framed `count` times, at once (head, body and end
 * in one write when `oneWrite`), and reads until harbor-lb closes or answers 201.
 */
function chunkedUpload(port: number, chunk: Buffer, count: number, oneWrite = false): Promise<Reply> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let ended = false;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.startsWith('HTTP/1.1 201') && text.endsWith('}')) s.end();
    });
    s.on('end', () => (ended = true));
    s.on('close', () => resolve({ text, ended }));
    const parts = [chunkedHead('u1'), framed(chunk, count), LAST_CHUNK];
    if (oneWrite) s.write(Buffer.concat(parts));
    else for (const p of parts) s.write(p);
  });
}

/** Writes `wire` at once and reads until harbor-lb closes the connection or `enough` says so. */
function exchange(port: number, wire: Buffer, enough: (got: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (enough(got)) s.destroy();
    });
    s.on('close', () => resolve(got));
    s.write(wire);
  });
}

/**
 * A chunked upload in 1 KiB chunks whose second read begins with the short tail (424 bytes) of a
 * chunk split between reads: head and the first 600 bytes of a chunk, then, once the node has those
 * (harbor-lb's body flows, waiting for more), the rest of the body in one write (one read), and,
 * when `next` is set, a second upload of `next` KiB pipelined behind it in that same write.
 */
async function splitChunkUpload(port: number, state: { received: number; progress?: () => void }, kib: number, next?: number): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  let text = '';
  const answers = next === undefined ? 1 : 2;
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if ((text.match(/\{"received":\d+\}/g) ?? []).length >= answers) resolve();
    });
    s.on('close', () => resolve());
  });
  s.on('error', () => {});
  const kibChunk = Buffer.alloc(1024, 0x61);
  const got600 = new Promise<void>((resolve) => (state.progress = () => state.received >= 600 && resolve()));
  s.write(Buffer.concat([chunkedHead('u1'), Buffer.from('400\r\n'), kibChunk.subarray(0, 600)]));
  await got600;
  const rest = [kibChunk.subarray(600), Buffer.from('\r\n'), framed(kibChunk, kib - 1), LAST_CHUNK];
  if (next !== undefined) rest.push(chunkedHead('u2'), framed(kibChunk, next), LAST_CHUNK);
  s.write(Buffer.concat(rest));
  await done;
  s.destroy();
  return text;
}

// Found by measuring (issue 20): one client sending 1-byte chunks for 6 s kept a worker busy for
// 10 s of CPU, and other clients' small GETs took 0.7 s.
describe('request bodies in tiny pieces', () => {
  it('an upload sent in 1-byte chunks is refused 400 at its first read, its connection closed, no node charged', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const reply = await chunkedUpload(Number(new URL(lb.url).port), Buffer.from('x'), 40_000);
    assert.match(reply.text, /^HTTP\/1\.1 400 /);
    assert.match(reply.text, /"code":"BAD_REQUEST".*came in pieces too small to forward \(chunk framing made up more than half of its first 16 KiB or more\)/);
    assert.equal(reply.ended, true, 'closed after the answer, with a FIN');
    // Judged on what the first read brought, before a piece went on.
    assert.equal(state.received, 0);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.status, 400);
    assert.equal(line!.error, `BODY_IN_TINY_PIECES: ${MOSTLY_FRAMING}`);
    assert.equal(lb.app.nodes.all[0]!.traffic.failures, 0);
    const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
    assert.match(metrics, /harbor_lb_client_rejections_total\{reason="BODY_IN_TINY_PIECES"\} 1/);
  });

  it('an upload in 100-byte chunks is refused 400 once more than 4,096 come within a second', async (t) => {
    const { node, state } = await uploadNode(t);
    // The clock stands still: every piece is within one second.
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const reply = await chunkedUpload(Number(new URL(lb.url).port), Buffer.alloc(100, 0x61), 20_000);
    assert.match(reply.text, /^HTTP\/1\.1 400 /);
    assert.equal(reply.ended, true);
    assert.ok(state.received <= PIECES_PER_WINDOW * 100, `the node got ${state.received} bytes`);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, `BODY_IN_TINY_PIECES: ${TOO_MANY_PIECES}`);
  });

  it('a body of 4,000 1-byte chunks, whole in the read that brought its head, is refused once 2,048 of them went on', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    // Under the count rule's 4,096; and the framing rule sees nothing read for the body past its head.
    const reply = await chunkedUpload(Number(new URL(lb.url).port), Buffer.from('x'), 4000, true);
    assert.match(reply.text, /^HTTP\/1\.1 400 /, reply.text);
    assert.ok(state.received <= FEW_BYTES_JUDGED_AFTER, `the node got ${state.received} bytes`);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, `BODY_IN_TINY_PIECES: ${FEW_BYTE_PIECES}`);
  });

  it("behind a trusted proxy, one client's small pieces do not count against another's on the same connection", async (t) => {
    const { node } = await uploadNode(t);
    // The clock stands still: every piece is within one second.
    const lb = await startApp([node.url], { health: { enabled: false }, listen: { trustedProxies: ['127.0.0.1/32'] } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const head = (client: string) => chunkedHead('u', `X-Forwarded-For: ${client}\r\n`);
    const body = (pieces: number) => Buffer.concat([framed(Buffer.alloc(100, 0x61), pieces), LAST_CHUNK]);
    // Client A: 4,000 pieces of 100 bytes, under the count; then client B's 200 on the same connection.
    const wire = Buffer.concat([head('192.0.2.1'), body(4000), head('192.0.2.2'), body(200)]);
    const text = await exchange(Number(new URL(lb.url).port), wire, (got) => (got.match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 2 && got.endsWith('}'));
    assert.deepEqual((text.match(/HTTP\/1\.1 \d{3}/g) ?? []).map((h) => h.slice(9)), ['201', '201'], text);
    assert.match(text, /\{"received":400000\}.*\{"received":20000\}$/s);
  });

  it("bodies of 2,000 1-byte chunks, pipelined 15 deep, are counted together: the connection is refused within the first 4,096 pieces", async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const one = Buffer.concat([chunkedHead('u'), framed(Buffer.from('x'), 2000), LAST_CHUNK]);
    // Without the connection's count every one is answered, and the connection stays open.
    const text = await exchange(Number(new URL(lb.url).port), Buffer.concat(Array.from({ length: 15 }, () => one)), (got) => (got.match(/\{"received":\d+\}/g) ?? []).length === 15);
    const statuses = (text.match(/HTTP\/1\.1 \d{3}/g) ?? []).map((h) => h.slice(9));
    assert.equal(statuses.at(-1), '400', JSON.stringify(statuses));
    assert.ok(statuses.length <= 3, `answered ${statuses.length} of 15 before the refusal`);
    assert.ok(state.received <= PIECES_PER_WINDOW, `the node got ${state.received} bytes`);
    const lines = await lb.logs.waitForRequests(statuses.length);
    assert.equal(lines.at(-1)!.error, `BODY_IN_TINY_PIECES: ${TOO_MANY_PIECES}`);
  });

  it('an upload with Content-Length written a byte at a time is never refused: each piece is a read', async (t) => {
    const { node } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const size = PIECES_PER_WINDOW + 1000;
    const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    t.after(() => s.destroy());
    s.setNoDelay(true);
    let text = '';
    const answered = new Promise<void>((resolve) =>
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (/\r\n\r\n.*\}$/s.test(text)) resolve();
      }),
    );
    s.write(`PUT /v2/library/a/blobs/uploads/u1?digest=sha256:0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`);
    // A byte a turn: a read for each, as a client that writes byte by byte makes.
    for (let sent = 0; sent < size; sent++) {
      s.write('x');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await answered;
    assert.match(text, /^HTTP\/1\.1 201 /);
    assert.match(text, new RegExp(`\\{"received":${size}\\}$`));
  });

  it('an upload in 1 KiB chunks goes through, however many come within a second', async (t) => {
    const { node } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    const count = PIECES_PER_WINDOW * 2;
    const reply = await chunkedUpload(Number(new URL(lb.url).port), Buffer.alloc(1024, 0x61), count);
    assert.match(reply.text, /^HTTP\/1\.1 201 /, JSON.stringify([reply, lb.logs.requests()]));
    assert.match(reply.text, new RegExp(`\\{"received":${count * 1024}\\}$`));
  });

  it('an upload in 1 KiB chunks whose read begins with the short tail of a split chunk goes through', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    // Judged mid-read, the 424-byte tail was 1 KiB of body against the 41 KiB the read brought.
    const text = await splitChunkUpload(Number(new URL(lb.url).port), state, 41);
    assert.match(text, /^HTTP\/1\.1 201 /, JSON.stringify(lb.logs.requests()));
    assert.match(text, /\{"received":41984\}$/);
  });

  it('an upload in 1 KiB chunks with another pipelined behind it in the same read goes through, both', async (t) => {
    const { node, state } = await uploadNode(t);
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock: new FakeClock(Date.now()) });
    t.after(() => lb.close());
    // The read brought the 10 KiB body's rest and all 40 KiB of the next: not this body's framing.
    const text = await splitChunkUpload(Number(new URL(lb.url).port), state, 10, 40);
    assert.equal((text.match(/HTTP\/1\.1 201 /g) ?? []).length, 2, JSON.stringify([text, lb.logs.requests()]));
    assert.match(text, /\{"received":10240\}.*\{"received":40960\}$/s);
  });
});
