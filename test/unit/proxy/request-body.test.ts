import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { RequestBody } from '../../../src/proxy/request-body.js';
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
