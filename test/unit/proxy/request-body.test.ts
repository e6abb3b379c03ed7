import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { RequestBody } from '../../../src/proxy/request-body.js';
import { FEW_BYTE_PIECES, FEW_BYTES_JUDGED_AFTER, PIECES_PER_WINDOW, TinyPieceLimit } from '../../../src/proxy/tiny-pieces.js';
import { FakeClock } from '../../support/fake-clock.js';
import type { BufferReclaimer } from '../../../src/util/buffer-reclaimer.js';

class CountingReclaimer implements BufferReclaimer {
  bytes = 0;
  allocated(bytes: number): number {
    this.bytes += bytes;
    return 0;
  }
  released(): void {}
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

/** A body under the tiny-piece limits whose refusal ends it (as the request handler's does): the reasons it was told. */
function watchedBody(req: PassThrough): { body: RequestBody; told: string[] } {
  const told: string[] = [];
  const body: RequestBody = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer(), {
    pieces: new TinyPieceLimit(new FakeClock()).of({}, '127.0.0.1'),
    over: (why) => {
      told.push(why);
      body.abort(new Error('refused'));
    },
  });
  return { body, told };
}

/**
 * Writes 10 more than `handed` pieces of `piece` at once into a watched body and reads `handed`
 * of them back; the read after them must fail with the refusal. The bytes read and the reasons told.
 */
async function handedBeforeRefusal(piece: Buffer, handed: number): Promise<{ got: number; told: string[] }> {
  const req = clientBody();
  const { body, told } = watchedBody(req);
  const it = body.iterable()[Symbol.asyncIterator]();
  const first = it.next();
  for (let i = 0; i < handed + 10; i++) req.write(piece);
  let got = (await first).value!.length;
  for (let i = 1; i < handed; i++) got += (await it.next()).value!.length;
  await assert.rejects(it.next(), /refused/);
  body.release();
  return { got, told };
}

it('a body of 1-byte pieces is told after 2,048 of them, from their average alone (no socket here to read bytes from)', async () => {
  const { got, told } = await handedBeforeRefusal(Buffer.from('x'), FEW_BYTES_JUDGED_AFTER);
  assert.equal(got, FEW_BYTES_JUDGED_AFTER);
  assert.deepEqual(told, [FEW_BYTE_PIECES]);
});

it('a body over the tiny-piece limit is handed on no further: the watch is told once, and the refusal it makes ends the body', async () => {
  // 10-byte pieces: the count rule's (1-byte ones would be told by their average first).
  const { got, told } = await handedBeforeRefusal(Buffer.from('0123456789'), PIECES_PER_WINDOW);
  assert.equal(got, PIECES_PER_WINDOW * 10);
  assert.equal(told.length, 1);
});

it("counts the node's side taking chunks, and says when the node waits on the client", async () => {
  const req = clientBody();
  const body = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer());
  const it = body.iterable()[Symbol.asyncIterator]();
  assert.deepEqual([body.taken, body.waiting], [0, false]);
  const first = it.next();
  assert.deepEqual([body.taken, body.waiting], [1, true], 'asked for a chunk the client has not sent');
  req.write(Buffer.alloc(10));
  await first;
  assert.deepEqual([body.taken, body.waiting], [1, false], 'the chunk is with the node, which has not asked for more');
  const second = it.next();
  req.end();
  assert.equal((await second).done, true);
  assert.equal(body.taken, 2);
});

it('tells the client to go ahead (100 Continue) once, when the body is first read, and never for a body left unread', async () => {
  const req = clientBody();
  let told = 0;
  const body = new RequestBody(req as unknown as IncomingMessage, new CountingReclaimer(), undefined, () => told++);
  assert.equal(told, 0, 'nothing read yet: the client is not told to send');
  const loading = body.preload();
  assert.equal(told, 1);
  req.end(Buffer.from('{}'));
  await loading;
  for await (const _ of body.iterable());
  assert.equal(told, 1, 'once');

  const unread = new RequestBody(clientBody() as unknown as IncomingMessage, new CountingReclaimer(), undefined, () => told++);
  unread.release();
  assert.equal(told, 1);
});

it('tells what is left of its body to read while it streams to a node, and nothing of a body it reads whole first', async () => {
  const calls: number[] = [];
  const socket = {};
  const largeReads = { want: (s: unknown, left: () => number) => (assert.equal(s, socket), calls.push(left())) };
  // The test runs the bodies one by one: which body tells is ClientReads' concern (its own test).
  const make = (length: string) => Object.assign(clientBody(), { socket, headers: { 'content-length': length } });
  // Streamed: what is left once the node's side begins to read (node:http already parsed 100 bytes
  // of it, waiting in the request), 0 at its end.
  const streamedReq = make('1000');
  streamedReq.write(Buffer.alloc(100));
  const streamed = new RequestBody(streamedReq as unknown as IncomingMessage, new CountingReclaimer(), undefined, undefined, largeReads);
  const it = streamed.iterable(true)[Symbol.asyncIterator]();
  assert.deepEqual(calls, [900]);
  assert.equal((await it.next()).value?.length, 100);
  const end = it.next();
  streamedReq.end(Buffer.alloc(900));
  await end;
  assert.equal((await it.next()).done, true);
  assert.deepEqual(calls, [900, 0]);
  // Released early (the node answered before the end): 0 as well.
  calls.length = 0;
  const released = new RequestBody(make('5000') as unknown as IncomingMessage, new CountingReclaimer(), undefined, undefined, largeReads);
  released.iterable(true)[Symbol.asyncIterator]();
  released.release();
  assert.deepEqual(calls, [5000, 0]);
  // Iterated only after it was let go (what was dropped since is counted nowhere): nothing said.
  calls.length = 0;
  const lateReq = make('5000');
  const late = new RequestBody(lateReq as unknown as IncomingMessage, new CountingReclaimer(), undefined, undefined, largeReads);
  late.release();
  late.iterable(true)[Symbol.asyncIterator]();
  assert.deepEqual(calls, []);
  // Preloaded (a manifest): kept whole, never large.
  calls.length = 0;
  const smallReq = make('10');
  const small = new RequestBody(smallReq as unknown as IncomingMessage, new CountingReclaimer(), undefined, undefined, largeReads);
  const loaded = small.preload();
  smallReq.end(Buffer.alloc(10));
  await loaded;
  assert.deepEqual(calls, []);
});
