import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptDeadlines } from '../../../src/proxy/attempt-deadlines.js';
import { FakeClock } from '../../support/fake-clock.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { forward } from '../../../src/proxy/forward.js';
import { OriginRewriter } from '../../../src/proxy/headers.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NO_RECLAIMER } from '../../../src/util/buffer-reclaimer.js';

const setup = () => {
  const clock = new FakeClock(0);
  const deadlines = new AttemptDeadlines(1_000, clock);
  const aborted: string[] = [];
  const watch = (headersMs: number) => deadlines.watch(headersMs, (err) => aborted.push((err as Error & { code: string }).code));
  return { clock, aborted, watch };
};

describe("the node's time limits for requests without a body", () => {
  it('a head that does not come within headersTimeout aborts with undici\'s headers timeout, no sooner', () => {
    const { clock, aborted, watch } = setup();
    watch(500);
    clock.advance(400);
    assert.deepEqual(aborted, []);
    clock.advance(200);
    assert.deepEqual(aborted, ['UND_ERR_HEADERS_TIMEOUT']);
    clock.advance(5_000);
    assert.deepEqual(aborted, ['UND_ERR_HEADERS_TIMEOUT'], 'once');
  });

  it('after the head, a gap of idleTimeout between chunks aborts with the body timeout; chunks keep it going', () => {
    const { clock, aborted, watch } = setup();
    const d = watch(500);
    clock.advance(100);
    d.headed();
    for (let i = 0; i < 20; i++) {
      clock.advance(300);
      d.data();
    }
    assert.deepEqual(aborted, [], 'six seconds of chunks 300 ms apart');
    clock.advance(1_200);
    assert.deepEqual(aborted, ['UND_ERR_BODY_TIMEOUT']);
  });

  it("time the client makes harbor-lb wait (the node paused for it) is not the node's gap", () => {
    const { clock, aborted, watch } = setup();
    const d = watch(500);
    d.headed();
    d.paused = true;
    clock.advance(10_000);
    assert.deepEqual(aborted, []);
    d.paused = false;
    clock.advance(1_200);
    assert.deepEqual(aborted, ['UND_ERR_BODY_TIMEOUT']);
  });

  it('an attempt that ended is no longer watched', () => {
    const { clock, aborted, watch } = setup();
    watch(500).done();
    clock.advance(5_000);
    assert.deepEqual(aborted, []);
  });
});

describe('forward() keeps the time limits of a request without a body itself', () => {
  /** Forwards one request of `method` to a node whose read pool and undici pool only record what they are given. */
  async function forwardOnce(method: string): Promise<{ via: string; opts: Record<string, unknown>; seen: number[] }> {
    const deadlines = new AttemptDeadlines(1_000, new FakeClock(0));
    const dispatched: Array<{ via: string; opts: Record<string, unknown> }> = [];
    let handler: { onConnect(abort: () => void): void; onHeaders(s: number, h: string[], r: () => void, t: string): boolean; onComplete(): void } | undefined;
    const recorder = (via: string) => ({ dispatch: (opts: Record<string, unknown>, h: typeof handler) => (dispatched.push({ via, opts }), (handler = h)) });
    const node = { name: 'n1', reads: recorder('read pool'), pool: recorder('undici') };
    const seen: number[] = [];
    const server = http.createServer((req, res) => {
      const done = forward({ node: node as unknown as ClusterNode, method, path: '/v2/', headers: [], body: undefined, req, res, rewriter: new OriginRewriter(['http://n1'], 'http://lb'), headersTimeout: 500, retryOnGatewayError: false, deadlines, reclaimer: NO_RECLAIMER });
      handler!.onConnect(() => {});
      seen.push(deadlines.size);
      handler!.onHeaders(200, ['content-length', '0'], () => {}, 'OK');
      handler!.onComplete();
      void done.then(() => seen.push(deadlines.size));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => http.request(`http://127.0.0.1:${port}/`, { method }, (res) => res.resume().on('end', resolve)).end());
    server.close();
    return { ...dispatched[0]!, seen };
  }

  it('tells the read pool to keep none (a GET), and watches the attempt until it ends', async () => {
    const { via, opts, seen } = await forwardOnce('GET');
    assert.equal(via, 'read pool');
    assert.equal(opts.headersTimeout, 0);
    assert.deepEqual(seen, [1, 0], 'watched from the request going out until it ended');
  });

  it("tells undici to keep none (its per-request timers are what this replaces; a DELETE), and watches the attempt until it ends", async () => {
    const { via, opts, seen } = await forwardOnce('DELETE');
    assert.equal(via, 'undici');
    assert.deepEqual([opts.headersTimeout, opts.bodyTimeout], [0, 0]);
    assert.deepEqual(seen, [1, 0], 'watched from the request going out until it ended');
  });
});
