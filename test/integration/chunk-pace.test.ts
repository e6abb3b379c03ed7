import assert from 'node:assert/strict';
import net from 'node:net';
import { it } from 'node:test';
import { PACE_WINDOW_MS, SMALL_PIECES_PER_WINDOW } from '../../src/proxy/chunk-pace.js';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { startServer } from '../support/servers.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// Found by measuring (issue 20): one client sending 1-byte chunks for 6 s kept a worker busy for
// 10 s, and other clients' small GETs took 0.7 s.
it('an upload sent in 1-byte chunks is read 4,096 pieces a second and reaches the node whole; its routing line says how long it was held', async (t) => {
  const PIECES = 6000;
  let received = '';
  let onBytes = (): void => {};
  const node = await startServer((req, res) => {
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      received += c;
      onBytes();
    });
    req.on('end', () => {
      res.writeHead(201, { 'content-length': 0 });
      res.end();
    });
  });
  t.after(() => node.close());
  const clock = new FakeClock(Date.now());
  const lb = await startApp([node.url], { health: { enabled: false } }, { clock });
  t.after(() => lb.close());
  const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
  t.after(() => s.destroy());
  let answer = '';
  const answered = new Promise<void>((resolve) =>
    s.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n')) resolve();
    }),
  );
  s.write(`PATCH /v2/library/a/blobs/uploads/u1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(PIECES)}0\r\n\r\n`);
  // Within the second: the allowance, and the one piece that went past it.
  await new Promise<void>((resolve) => {
    onBytes = () => {
      if (received.length >= SMALL_PIECES_PER_WINDOW + 1) resolve();
    };
    onBytes();
  });
  for (let i = 0; i < 50; i++) await turn();
  assert.equal(received.length, SMALL_PIECES_PER_WINDOW + 1, 'nothing more is read while the second lasts');
  clock.advance(PACE_WINDOW_MS);
  await answered;
  assert.match(answer, /^HTTP\/1\.1 201 /);
  assert.equal(received, 'x'.repeat(PIECES));
  const [line] = await lb.logs.waitForRequests(1);
  assert.equal(line!.pacedMs, PACE_WINDOW_MS);
  assert.equal(line!.bytesIn, PIECES);
  assert.equal(line!.error, undefined);
});
