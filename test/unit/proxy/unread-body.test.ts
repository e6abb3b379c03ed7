import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { limitUnreadBody } from '../../../src/proxy/unread-body.js';

/** A client's body as node:http gives it (a stream, not yet complete) on a connection that records being closed. */
function clientBody(): PassThrough & { complete: boolean; socket: { destroyed: boolean; destroy: () => void } } {
  const socket = { destroyed: false, destroy: () => void (socket.destroyed = true) };
  return Object.assign(new PassThrough(), { complete: false, socket });
}

/** An answer that is written whole when `finish` is emitted. */
function answer(finished: boolean): EventEmitter & { writableFinished: boolean } {
  return Object.assign(new EventEmitter(), { writableFinished: finished });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

it('closes the connection once more than the limit was dropped, not before', async () => {
  const req = clientBody();
  let cuts = 0;
  limitUnreadBody(req as unknown as IncomingMessage, answer(true) as unknown as ServerResponse, { limit: 1000, reclaimer: undefined, onCut: () => cuts++ });
  req.write(Buffer.alloc(1000));
  await turn();
  assert.equal(req.socket.destroyed, false);
  req.write(Buffer.alloc(1));
  await turn();
  assert.equal(req.socket.destroyed, true);
  assert.equal(cuts, 1);
});

it('with the answer still being written, stops reading and closes the connection only once the answer is written', async () => {
  const req = clientBody();
  const res = answer(false);
  limitUnreadBody(req as unknown as IncomingMessage, res as unknown as ServerResponse, { limit: 1000, reclaimer: undefined, onCut: () => {} });
  req.write(Buffer.alloc(1001));
  await turn();
  assert.equal(req.socket.destroyed, false, 'the answer would be cut');
  assert.equal(req.isPaused(), true, 'the body is read on meanwhile');
  res.writableFinished = true;
  res.emit('finish');
  assert.equal(req.socket.destroyed, true);
});

it('lets a body that ends within the limit end, and leaves the connection open', async () => {
  const req = clientBody();
  limitUnreadBody(req as unknown as IncomingMessage, answer(true) as unknown as ServerResponse, { limit: 1000, reclaimer: undefined, onCut: () => {} });
  req.end(Buffer.alloc(1000));
  await turn();
  assert.equal(req.listenerCount('data'), 0);
  assert.equal(req.socket.destroyed, false);
});
