import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { UnreadBodyLimit } from '../../../src/proxy/unread-body.js';
import { PIECES_PER_WINDOW, TinyPieceLimit } from '../../../src/proxy/tiny-pieces.js';
import { FakeClock } from '../../support/fake-clock.js';

/** A client's body as node:http gives it: a stream, not yet complete, on its connection; chunked unless said. */
function clientBody(headers: Record<string, string> = { 'transfer-encoding': 'chunked' }): PassThrough & { complete: boolean; socket: EventEmitter & { bytesRead: number } } {
  return Object.assign(new PassThrough(), { complete: false, headers, socket: Object.assign(new EventEmitter(), { bytesRead: 0 }) });
}

/** `n` bytes of body arrive, read off the connection as `wire` bytes (chunk framing included). */
function send(req: ReturnType<typeof clientBody>, n: number, wire = n): void {
  req.socket.bytesRead += wire;
  req.write(Buffer.alloc(n));
}

/** An answer that is written whole when `finish` is emitted. */
function answer(finished: boolean): EventEmitter & { writableFinished: boolean } {
  return Object.assign(new EventEmitter(), { writableFinished: finished });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const clock = new FakeClock();
  const closed: string[] = [];
  const ips: string[] = [];
  const limit = new UnreadBodyLimit({
    limit: 1000,
    within: 30_000,
    clock,
    pieces: new TinyPieceLimit(clock),
    close: (_socket, why, ip) => {
      closed.push(why);
      ips.push(ip);
    },
  });
  const watch = (req: ReturnType<typeof clientBody>, res: ReturnType<typeof answer>) =>
    limit.watch(req as unknown as IncomingMessage, res as unknown as ServerResponse, '127.0.0.9', undefined);
  return { clock, closed, ips, watch };
}

it('closes the connection once more than the limit was dropped, not before, and reads no more', async () => {
  const { closed, ips, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  send(req, 1000);
  await turn();
  assert.deepEqual(closed, []);
  send(req, 1);
  await turn();
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /more than 1000 bytes came after its answer/);
  assert.deepEqual(ips, ['127.0.0.9'], "the client as its routing line names it");
  assert.equal(req.isPaused(), true);
});

it('counts what the connection reads, chunk framing included: one byte of body in 2000 read closes it', async () => {
  const { closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  send(req, 1, 2000);
  await turn();
  assert.equal(closed.length, 1);
});

it('checks what the connection read between chunks too (a chunk size of endless zeros brings no chunk)', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  req.socket.bytesRead += 2000;
  clock.advance(999);
  assert.deepEqual(closed, []);
  clock.advance(1);
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /more than 1000 bytes/);
});

it('lets go of a request whose connection closed after its answer, timers included', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  req.socket.emit('close');
  assert.equal(clock.pending, 0);
  assert.equal(req.listenerCount('data'), 0);
  assert.equal(req.socket.listenerCount('close'), 0);
  assert.deepEqual(closed, []);
});

it('closes the connection of a body that does not end within the time limit, however little of it comes', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  send(req, 10);
  clock.advance(29_999);
  assert.deepEqual(closed, []);
  clock.advance(1);
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /did not end within 30000 ms/);
});

it('with the answer still being written, stops reading and closes the connection only once the answer is written', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  const res = answer(false);
  watch(req, res);
  send(req, 1001);
  await turn();
  assert.deepEqual(closed, [], 'the answer would be cut');
  assert.equal(req.isPaused(), true, 'the body is read on meanwhile');
  res.writableFinished = true;
  res.emit('finish');
  assert.equal(closed.length, 1);
  assert.equal(clock.pending, 0, 'the late close is called off');
});

it('closes the connection of a client that does not read the answer being written, within the time limit', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(false));
  send(req, 1001);
  await turn();
  clock.advance(29_999);
  assert.deepEqual(closed, []);
  clock.advance(1);
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /answer was not read within 30000 ms/);
});

it('lets a body that ends within the limits end, and leaves the connection and no timer behind', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  req.socket.bytesRead += 1000;
  req.end(Buffer.alloc(1000));
  await turn();
  assert.equal(req.listenerCount('data'), 0);
  assert.equal(clock.pending, 0);
  clock.advance(60_000);
  assert.deepEqual(closed, []);
});

it('closes the connection when the rest comes in more tiny pieces within a second than a body may bring, not before', async () => {
  const { clock, closed, watch } = setup();
  const req = clientBody();
  watch(req, answer(true));
  // Within the byte limit (1 byte each, none of it counted as read): only the count of pieces says no.
  for (let i = 0; i < PIECES_PER_WINDOW; i++) send(req, 1, 0);
  await turn();
  assert.deepEqual(closed, []);
  clock.advance(1000);
  // A new second: as many again pass, one more does not.
  for (let i = 0; i < PIECES_PER_WINDOW; i++) send(req, 1, 0);
  await turn();
  assert.deepEqual(closed, []);
  send(req, 1, 0);
  await turn();
  assert.equal(closed.length, 1);
  assert.match(closed[0]!, /more than 4096 pieces of body averaging under 512 bytes within 1000 ms on its connection, the last after its answer/);
  assert.equal(req.isPaused(), true);
});

it('does not count the pieces of a body with Content-Length: each is a read its client paid a packet for', async () => {
  const { closed, watch } = setup();
  const req = clientBody({ 'content-length': '900' });
  watch(req, answer(true));
  for (let i = 0; i < PIECES_PER_WINDOW + 100; i++) send(req, 1, 0);
  await turn();
  assert.deepEqual(closed, []);
});
