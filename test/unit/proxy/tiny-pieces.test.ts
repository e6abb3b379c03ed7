import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { getDefaultHighWaterMark } from 'node:stream';
import { it } from 'node:test';
import type { ProxyDeps } from '../../../src/proxy/proxy-deps.js';
import { createRequestHandler } from '../../../src/proxy/request-handler.js';
import { CHUNKED_BODY_BUFFER, FEW_BYTES_JUDGED_AFTER, fewBytePieces, holdFewPieces, PIECES_PER_WINDOW, PIECES_WINDOW_MS, TINY_AVERAGE, TinyPieceLimit } from '../../../src/proxy/tiny-pieces.js';
import { FakeClock } from '../../support/fake-clock.js';

it('a body of 1-byte pieces is over once more than 4,096 come within a second, not before', () => {
  const pieces = new TinyPieceLimit(new FakeClock()).of({}, '127.0.0.1');
  for (let i = 0; i < PIECES_PER_WINDOW; i++) assert.equal(pieces.took(1), false);
  assert.equal(pieces.took(1), true);
});

it('is never over for pieces that average 1 KiB or more, however many, short reads among them included', () => {
  const pieces = new TinyPieceLimit(new FakeClock()).of({}, '127.0.0.1');
  for (let i = 0; i < PIECES_PER_WINDOW * 4; i++) assert.equal(pieces.took(i % 10 === 0 ? 100 : 16 * 1024), false);
  const even = new TinyPieceLimit(new FakeClock()).of({}, '127.0.0.1');
  for (let i = 0; i < PIECES_PER_WINDOW * 2; i++) assert.equal(even.took(TINY_AVERAGE), false);
});

it('is never over for small pieces that come slower than 4,096 a second (a slow producer)', () => {
  const clock = new FakeClock();
  const pieces = new TinyPieceLimit(clock).of({}, '127.0.0.1');
  for (let second = 0; second < 5; second++) {
    for (let i = 0; i < PIECES_PER_WINDOW - 1; i++) assert.equal(pieces.took(1), false);
    clock.advance(PIECES_WINDOW_MS);
  }
});

it("counts a connection's bodies together: requests of a few thousand tiny pieces each do not each start afresh", () => {
  const limit = new TinyPieceLimit(new FakeClock());
  const connection = {};
  for (let i = 0; i < PIECES_PER_WINDOW / 2; i++) assert.equal(limit.of(connection, 'a').took(1), false, 'the first request');
  for (let i = 0; i < PIECES_PER_WINDOW / 2; i++) assert.equal(limit.of(connection, 'a').took(1), false, 'the second, within the same second');
  assert.equal(limit.of({}, 'a').took(1), false, 'another connection has a count of its own');
  assert.equal(limit.of(connection, 'b').took(1), false, "another client on the same connection (behind a trusted proxy) has its own");
  assert.equal(limit.of(connection, 'a').took(1), true, 'the third piece over, on the same connection');
});

it("forgets a connection's clients whose window is over once many came, not those counting now", () => {
  const clock = new FakeClock();
  const limit = new TinyPieceLimit(clock);
  const connection = {};
  const first = limit.of(connection, 'gone-0');
  for (let i = 0; i < 100; i++) limit.of(connection, `gone-${i}`).took(1);
  clock.advance(PIECES_WINDOW_MS);
  const busy = limit.of(connection, 'busy');
  busy.took(1);
  limit.of(connection, 'new').took(1);
  assert.equal(limit.of(connection, 'busy'), busy, 'a client counting now keeps its count');
  assert.notEqual(limit.of(connection, 'gone-0'), first, 'one whose window is over was forgotten');
});

it('a body whose pieces average under 5 bytes is told after 2,048 of them, whatever the connection read; 1 KiB pieces never', () => {
  assert.equal(fewBytePieces(FEW_BYTES_JUDGED_AFTER, FEW_BYTES_JUDGED_AFTER), false);
  assert.equal(fewBytePieces(FEW_BYTES_JUDGED_AFTER + 1, FEW_BYTES_JUDGED_AFTER + 1), true, '1-byte chunks');
  assert.equal(fewBytePieces(10_000, 4 * 10_000), true, '4-byte chunks');
  assert.equal(fewBytePieces(10_000, 5 * 10_000), false, '5-byte chunks carry more body than framing');
  assert.equal(fewBytePieces(100_000, 100_000 * 1000), false);
});

it('starts a new window when the clock is stepped back', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
  const pieces = new TinyPieceLimit(clock).of({}, '127.0.0.1');
  for (let i = 0; i < PIECES_PER_WINDOW; i++) pieces.took(1);
  const at = clock.now();
  (clock as unknown as { now: () => number }).now = () => at - 3_600_000;
  assert.equal(pieces.took(1), false);
});

/** A real server whose `onRequest` runs for each request; a raw client sends `head` then `body`. */
async function serverAndClient(onRequest: http.RequestListener, head: string, body: Buffer) {
  const server = http.createServer({ requestTimeout: 0 }, onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  client.write(head);
  client.write(body);
  return {
    close: () => {
      client.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

it('node:http holds at most 16 KiB of a chunked body in 1-byte pieces unread (a read\'s worth over), not 64 KiB', async (t) => {
  const oneBytePieces = Buffer.from('1\r\nx\r\n'.repeat(200_000));
  const head = 'PATCH /v2/a/blobs/uploads/u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
  let req: http.IncomingMessage | undefined;
  const s = await serverAndClient((q) => (holdFewPieces(q), (req = q)), head, oneBytePieces);
  t.after(s.close);
  for (let i = 0; i < 2000 && (req?.readableLength ?? 0) < CHUNKED_BODY_BUFFER; i++) await turn();
  for (let i = 0; i < 50; i++) await turn();
  assert.equal(req!.readableHighWaterMark, CHUNKED_BODY_BUFFER);
  const held = req!.readableLength;
  assert.ok(held >= CHUNKED_BODY_BUFFER && held < 2 * CHUNKED_BODY_BUFFER, `node:http stopped reading at ${held} pieces`);
});

it('the request handler lowers it for a chunked body as it gets the request, and leaves a body with Content-Length alone', async (t) => {
  // Connections refused already: the handler drops the request right after its first step.
  const handler = createRequestHandler({ connections: { rejected: () => true } } as unknown as ProxyDeps);
  const marks: number[] = [];
  const s = await serverAndClient(
    (q, r) => (handler.handle(q, r), marks.push(q.readableHighWaterMark)),
    'PUT /v2/a/blobs/uploads/u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nPUT /v2/a/blobs/uploads/v HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n',
    Buffer.from('x'),
  );
  t.after(s.close);
  for (let i = 0; i < 2000 && marks.length < 2; i++) await turn();
  assert.deepEqual(marks, [CHUNKED_BODY_BUFFER, getDefaultHighWaterMark(false)]);
});
