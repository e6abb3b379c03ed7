import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { RequestBody } from '../../../src/proxy/request-body.js';
import { ChunkPacing, PACE_WINDOW_MS, SMALL_PIECE, SMALL_PIECES_PER_WINDOW } from '../../../src/proxy/chunk-pace.js';
import { FakeClock } from '../../support/fake-clock.js';
import type { BufferReclaimer } from '../../../src/util/buffer-reclaimer.js';

class CountingReclaimer implements BufferReclaimer {
  bytes = 0;
  allocated(bytes: number): void {
    this.bytes += bytes;
  }
  close(): void {}
}

/** A client's body as node:http gives it: a stream, not yet complete. */
function clientBody(): PassThrough & { complete: boolean } {
  return Object.assign(new PassThrough(), { complete: false });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

it("reports every chunk of the client's body as a short-lived buffer, those sent to the node and those dropped after release", async () => {
  const req = clientBody();
  const reclaimer = new CountingReclaimer();
  const body = new RequestBody(req as unknown as IncomingMessage, reclaimer);
  const first = body.iterable()[Symbol.asyncIterator]().next();
  req.write(Buffer.alloc(1000));
  const { value } = await first;
  assert.equal(value?.length, 1000);
  assert.equal(reclaimer.bytes, 1000);
  // The node answered early: the rest is read and dropped, and still counted.
  body.release();
  req.write(Buffer.alloc(3000));
  req.write(Buffer.alloc(2000));
  await turn();
  assert.equal(reclaimer.bytes, 6000);
  assert.equal(body.bytes, 1000, 'what reached the node');
});

it('reads a body that comes in small pieces 4,096 of them a second: the next waits for the second to end, large pieces never do', async () => {
  const req = clientBody();
  const clock = new FakeClock();
  const pacing = new ChunkPacing(clock);
  const body = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer(), pacing.start('192.0.2.1'));
  const it = body.iterable()[Symbol.asyncIterator]();
  const first = it.next();
  for (let i = 0; i < SMALL_PIECES_PER_WINDOW + 100; i++) req.write(Buffer.from('x'));
  req.write(Buffer.alloc(SMALL_PIECE));
  let got = (await first).value!.length;
  // One piece past the allowance is handed on; then the body waits.
  for (let i = 1; i <= SMALL_PIECES_PER_WINDOW; i++) got += (await it.next()).value!.length;
  assert.equal(got, SMALL_PIECES_PER_WINDOW + 1);
  clock.advance(400);
  let next = false;
  const waiting = it.next().then((r) => ((next = true), r));
  for (let i = 0; i < 20; i++) await turn();
  assert.equal(next, false, 'held while the second lasts, with the pieces ready to read');
  assert.equal(body.waiting, true, 'a wait on the client, as the body-rate minimum sees it');
  clock.advance(600);
  got += (await waiting).value!.length;
  for (let i = 0; i < 98; i++) got += (await it.next()).value!.length;
  // A new second: the pieces and the large one after them come at once.
  assert.equal((await it.next()).value!.length, SMALL_PIECE);
  assert.equal(got, SMALL_PIECES_PER_WINDOW + 100);
  assert.equal(body.pacedMs, PACE_WINDOW_MS, 'held from the piece past the allowance to the end of its second');
  body.release();
  assert.equal(clock.pending, 0, 'nothing left waiting');
});

it('never holds a body of large pieces, however many come', async () => {
  const req = clientBody();
  const clock = new FakeClock();
  const body = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer(), new ChunkPacing(clock).start('192.0.2.1'));
  const it = body.iterable()[Symbol.asyncIterator]();
  const first = it.next();
  const n = SMALL_PIECES_PER_WINDOW * 2;
  for (let i = 0; i < n; i++) req.write(Buffer.alloc(SMALL_PIECE));
  await first;
  for (let i = 1; i < n; i++) await it.next();
  assert.equal(body.bytes, n * SMALL_PIECE);
  assert.equal(body.pacedMs, 0);
  assert.equal(clock.pending, 0);
});

it("shares a client's allowance of small pieces among its requests, so more connections buy no more; other clients keep theirs", () => {
  const clock = new FakeClock();
  const pacing = new ChunkPacing(clock);
  const a = pacing.start('192.0.2.1');
  const b = pacing.start('192.0.2.1');
  const other = pacing.start('192.0.2.2');
  for (let i = 0; i < SMALL_PIECES_PER_WINDOW / 2; i++) assert.equal(a.took(1) + b.took(1), 0);
  assert.equal(a.took(1), PACE_WINDOW_MS);
  assert.equal(b.took(1), PACE_WINDOW_MS);
  assert.equal(other.took(1), 0);
  clock.advance(PACE_WINDOW_MS);
  assert.equal(b.took(1), 0, 'a new second, a new allowance');
  a.done();
  a.done();
  b.done();
  other.done();
  // Both hold small pieces in the current second: kept for the client's next requests.
  assert.equal(pacing.clients, 2);
  clock.advance(PACE_WINDOW_MS);
  pacing.start('192.0.2.3').done();
  assert.equal(pacing.clients, 0, 'forgotten once their second is over and no request of theirs is under way');
});

it('keeps a client\'s allowance from one request to the next: requests one after another buy no more', () => {
  const clock = new FakeClock();
  const pacing = new ChunkPacing(clock);
  const first = pacing.start('192.0.2.1');
  for (let i = 0; i < SMALL_PIECES_PER_WINDOW; i++) assert.equal(first.took(1), 0);
  first.done();
  const next = pacing.start('192.0.2.1');
  assert.equal(next.took(1), PACE_WINDOW_MS);
  next.done();
  // A client that brought no small piece is not kept.
  pacing.start('192.0.2.2').done();
  assert.equal(pacing.clients, 1);
});

it('a body released or cut while held lets go of the hold, counting only the time it was held, and waits on the client only after a hold', async () => {
  const req = clientBody();
  const clock = new FakeClock();
  const body = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer(), new ChunkPacing(clock).start('192.0.2.1'));
  const it = body.iterable()[Symbol.asyncIterator]();
  const first = it.next();
  for (let i = 0; i <= SMALL_PIECES_PER_WINDOW + 1; i++) req.write(Buffer.from('x'));
  await first;
  for (let i = 1; i <= SMALL_PIECES_PER_WINDOW; i++) await it.next();
  void it.next();
  clock.advance(300);
  assert.equal(body.stalls.waiting, false, 'a hold is not a wait on the client');
  assert.equal(clock.pending, 1, 'held');
  body.release();
  assert.equal(clock.pending, 0, 'the hold is let go with the body');
  assert.equal(body.pacedMs, 300);
});

it('never holds a body longer than a second when the clock is stepped back', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
  const pace = new ChunkPacing(clock).start('192.0.2.1');
  for (let i = 0; i < SMALL_PIECES_PER_WINDOW; i++) pace.took(1);
  const at = clock.now();
  // Stepped back an hour (NTP, a VM resumed): a new window, not an hour's wait.
  (clock as unknown as { now: () => number }).now = () => at - 3_600_000;
  assert.equal(pace.took(1), 0);
  for (let i = 1; i < SMALL_PIECES_PER_WINDOW; i++) pace.took(1);
  assert.equal(pace.took(1), PACE_WINDOW_MS);
});
