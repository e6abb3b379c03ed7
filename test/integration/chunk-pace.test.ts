import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { PACE_WINDOW_MS, SMALL_PIECES_PER_WINDOW } from '../../src/proxy/chunk-pace.js';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { startServer } from '../support/servers.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A node that keeps the upload bodies it is sent, tells of each piece, and answers 201 at each body's end. */
async function keepingNode(t: { after: (fn: () => unknown) => void }) {
  const bodies = new Map<string, string>();
  const state = { received: 0, onBytes: (): void => {} };
  const node = await startServer((req, res) => {
    req.setEncoding('latin1');
    bodies.set(req.url!, '');
    req.on('data', (c: string) => {
      bodies.set(req.url!, bodies.get(req.url!)! + c);
      state.received += c.length;
      state.onBytes();
    });
    req.on('end', () => {
      res.writeHead(201, { 'content-length': 0 });
      res.end();
    });
  });
  t.after(() => node.close());
  /** Resolves once the node has received `n` bytes of body in all. */
  const got = (n: number) =>
    new Promise<void>((resolve) => {
      state.onBytes = () => {
        if (state.received >= n) resolve();
      };
      state.onBytes();
    });
  return { node, bodies, state, got };
}

/** One connection sending a chunked upload of `pieces` 1-byte chunks at once; resolves with the answer's status line. */
function tinyUpload(port: number, path: string, pieces: number, t: { after: (fn: () => unknown) => void }): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  t.after(() => s.destroy());
  let answer = '';
  s.write(`PATCH ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(pieces)}0\r\n\r\n`);
  return new Promise((resolve) =>
    s.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n')) resolve(answer.slice(0, answer.indexOf('\r\n')));
    }),
  );
}

// Found by measuring (issue 20): one client sending 1-byte chunks for 6 s kept a worker busy for
// 10 s, and other clients' small GETs took 0.7 s.
describe('request bodies in tiny pieces', () => {
  it('an upload sent in 1-byte chunks is read 4,096 pieces a second and reaches the node whole; its routing line says how long it was held', async (t) => {
    const PIECES = 6000;
    const { node, bodies, state, got } = await keepingNode(t);
    const clock = new FakeClock(Date.now());
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock });
    t.after(() => lb.close());
    const path = '/v2/library/a/blobs/uploads/u1';
    const answered = tinyUpload(Number(new URL(lb.url).port), path, PIECES, t);
    // Within the second: the allowance, and the one piece that went past it.
    await got(SMALL_PIECES_PER_WINDOW + 1);
    for (let i = 0; i < 50; i++) await turn();
    assert.equal(state.received, SMALL_PIECES_PER_WINDOW + 1, 'nothing more is read while the second lasts');
    clock.advance(PACE_WINDOW_MS);
    assert.equal(await answered, 'HTTP/1.1 201 Created');
    assert.equal(bodies.get(path), 'x'.repeat(PIECES));
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.pacedMs, PACE_WINDOW_MS);
    assert.equal(line!.bytesIn, PIECES);
    assert.equal(line!.error, undefined);
  });

  it("a client's connections share one allowance: three uploads in tiny pieces together get no more read than one", async (t) => {
    const PIECES = 3000;
    const { node, bodies, state, got } = await keepingNode(t);
    const clock = new FakeClock(Date.now());
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock });
    t.after(() => lb.close());
    const port = Number(new URL(lb.url).port);
    const paths = ['u1', 'u2', 'u3'].map((u) => `/v2/library/a/blobs/uploads/${u}`);
    const answers = Promise.all(paths.map((p) => tinyUpload(port, p, PIECES, t)));
    await got(SMALL_PIECES_PER_WINDOW + 1);
    for (let i = 0; i < 50; i++) await turn();
    // Each held request may have had the one piece that found the allowance spent.
    assert.ok(state.received <= SMALL_PIECES_PER_WINDOW + paths.length, `${state.received} pieces read within the second`);
    // A second at a time until all is read (three seconds' worth at most).
    const total = PIECES * paths.length;
    for (let second = 0; second < 10 && state.received < total; second++) {
      clock.advance(PACE_WINDOW_MS);
      await got(Math.min(total, state.received + SMALL_PIECES_PER_WINDOW));
    }
    assert.deepEqual(await answers, paths.map(() => 'HTTP/1.1 201 Created'));
    for (const p of paths) assert.equal(bodies.get(p), 'x'.repeat(PIECES));
  });
});
