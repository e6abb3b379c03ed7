import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { describe, it } from 'node:test';
import { forward, type ForwardOutcome } from '../../src/proxy/forward.js';
import { OriginRewriter } from '../../src/proxy/headers.js';
import { NO_RECLAIMER } from '../../src/util/buffer-reclaimer.js';
import { startApp } from '../support/app.js';
import { startServer } from '../support/servers.js';

/** A front server whose handler forwards each request with `before` run first; answers the outcome as JSON. */
async function front(t: { after: (fn: () => unknown) => void }, nodeUrl: string, headers: string[], before: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>) {
  const lb = await startApp([nodeUrl]);
  t.after(() => lb.close());
  const outcomes: ForwardOutcome[] = [];
  let first!: (o: ForwardOutcome) => void;
  const outcome = new Promise<ForwardOutcome>((resolve) => (first = resolve));
  const server = http.createServer(async (req, res) => {
    await before(req, res);
    const o = await forward({
      node: lb.app.nodes.all[0]!,
      method: req.method!,
      path: '/v2/x/blobs/sha256:1',
      headers,
      body: undefined,
      req,
      res,
      rewriter: new OriginRewriter([nodeUrl], 'http://127.0.0.1:1'),
      headersTimeout: 5000,
      retryOnGatewayError: false,
      reclaimer: NO_RECLAIMER,
    });
    outcomes.push(o);
    first(o);
    // In a header too, so a HEAD reads it.
    const json = JSON.stringify({ phase: o.phase, code: (o.error as { code?: string } | undefined)?.code });
    if (!res.destroyed) res.writeHead(200, { 'x-outcome': json }).end(json);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, outcomes, outcome };
}

describe('forward: before anything reaches the node', () => {
  it('a request harbor-lb will not write is unsendable, not a node failure, and the node never sees it', async (t) => {
    let reached = 0;
    const node = await startServer((_q, r) => {
      reached++;
      r.end('ok');
    });
    t.after(() => node.close());
    // What request-check refuses, handed to forward directly: a GET goes out through the node's
    // read pool, a DELETE through undici; each refuses it before a byte is written.
    const cases: Array<[string, string[]]> = [
      ['GET', ['host', 'a', 'host', 'b']],
      ['GET', ['x-a', 'a\r\nx-b: smuggled']],
      ['HEAD', ['transfer-encoding', 'chunked']],
      ['DELETE', ['host', 'a', 'host', 'b']],
    ];
    for (const [method, headers] of cases) {
      const f = await front(t, node.url, headers, async () => {});
      const outcome = await new Promise<string>((resolve, reject) => {
        http
          .request(f.url, { method }, (res) => {
            resolve(res.headers['x-outcome'] as string);
            res.resume();
          })
          .on('error', reject)
          .end();
      });
      assert.deepEqual(JSON.parse(outcome), { phase: 'unsendable', code: 'UND_ERR_INVALID_ARG' }, `${method} ${headers.join(' ')}`);
    }
    assert.equal(reached, 0);
  });

  // Regression of issue 9: a client gone before dispatch left 'close' already fired; the request
  // went to the node anyway and the proxy waited forever for a 'drain' on the dead response,
  // holding one of the node's connections.
  it('a client that left before dispatch never reaches the node and holds none of its connections', async (t) => {
    let reached = 0;
    const node = await startServer((_q, r) => {
      reached++;
      r.end(Buffer.alloc(1024 * 1024));
    });
    t.after(() => node.close());
    const f = await front(t, node.url, ['host', 'a'], async (req, res) => {
      req.socket.destroy();
      if (!res.destroyed) await once(res, 'close');
    });
    const client = http.get(f.url);
    client.on('error', () => {});
    assert.equal((await f.outcome).phase, 'client-gone');
    assert.equal(reached, 0);
  });
});

describe('forward: an answer held until what it teaches is stored', () => {
  // An upload's POST answer carries its location: the client may send the next request (to
  // another worker or instance) as soon as it has it, so the pin must be stored first.
  it('the head goes to the client only once onHead\'s promise settles', async (t) => {
    const node = await startServer((_q, r) => {
      r.writeHead(202, { location: '/v2/x/blobs/uploads/u1', 'content-length': 0 }).end();
    });
    t.after(() => node.close());
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    let seen!: () => void;
    const headSeen = new Promise<void>((resolve) => (seen = resolve));
    let store!: () => void;
    const stored = new Promise<void>((resolve) => (store = resolve));
    let sentBeforeStored: boolean | undefined;
    const server = http.createServer(async (req, res) => {
      const done = forward({
        node: lb.app.nodes.all[0]!,
        method: 'POST',
        path: '/v2/x/blobs/uploads/',
        headers: ['host', 'lb'],
        body: undefined,
        req,
        res,
        rewriter: new OriginRewriter([node.url], 'http://127.0.0.1:1'),
        headersTimeout: 5000,
        retryOnGatewayError: false,
        reclaimer: NO_RECLAIMER,
        onHead: () => {
          seen();
          return stored;
        },
      });
      await headSeen;
      // Turns enough for a head written at once to be on its way.
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      sentBeforeStored = res.headersSent;
      store();
      const o = await done;
      if (!res.writableEnded) res.end();
      assert.equal(o.phase, 'complete');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const status = await new Promise<number>((resolve, reject) => {
      http
        .request(`http://127.0.0.1:${(server.address() as { port: number }).port}/`, { method: 'POST' }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        })
        .on('error', reject)
        .end();
    });
    assert.equal(sentBeforeStored, false, 'the head waited for the pin');
    assert.equal(status, 202);
  });
});
