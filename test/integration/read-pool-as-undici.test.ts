import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, it } from 'node:test';
import type { ClusterNode } from '../../src/nodes/node.js';
import { ReadPool, type ReadHandler } from '../../src/nodes/read-pool.js';
import { AttemptDeadlines } from '../../src/proxy/attempt-deadlines.js';
import { forward, type ForwardOutcome } from '../../src/proxy/forward.js';
import { OriginRewriter } from '../../src/proxy/headers.js';
import { NO_RECLAIMER } from '../../src/util/buffer-reclaimer.js';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { makeServerCert } from '../support/pki.js';
import { rawRequest } from '../support/raw-http.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * Every GET and HEAD goes through the read pool, which undici carried before: what clients and
 * nodes got from undici, they get from it too.
 */

const OPTIONS = { connectTimeout: 5_000, bodyTimeout: 5_000, keepAliveTimeout: 5_000, maxIdle: 4 };

describe('read pool, as undici: the request', () => {
  // curl -X GET -d '', Python requests with data=b'', an empty HttpClient content: no body, said so.
  for (const method of ['GET', 'HEAD'] as const) {
    it(`a ${method} that says Content-Length: 0 reaches the node (without it), not a 400 from harbor-lb`, async (t) => {
      const heads: http.IncomingHttpHeaders[] = [];
      const node = await startServer((req, res) => {
        heads.push(req.headers);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
        res.end('{}');
      });
      const lb = await startApp([node.url]);
      t.after(async () => {
        await lb.close();
        await node.close();
      });
      const reply = await rawRequest(lb.url, `${method} /v2/ HTTP/1.1\r\nHost: registry.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      assert.equal(reply.status, 200, `harbor-lb answered: ${reply.text.slice(0, 400)}`);
      assert.equal(heads.length, 1);
      assert.equal(heads[0]!['content-length'], undefined, 'a zero length is left off, as undici left it off');
    });
  }

  // A kept-alive connection the node closed just as the next request went out: sent again on a new one.
  it('a request sent again on a new connection is announced once: onSent once, no deadline left watched', async (t) => {
    const perSocket = new WeakMap<Socket, number>();
    const node = http.createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n === 2) return req.socket.destroy();
      res.writeHead(200, { 'content-length': 2 });
      res.end('ok');
    });
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => (node.closeAllConnections(), node.close(() => resolve()))));
    const reads = new ReadPool(new URL(`http://127.0.0.1:${(node.address() as AddressInfo).port}`), OPTIONS);
    t.after(() => reads.close());
    const deadlines = new AttemptDeadlines(1_000, new FakeClock(0));
    let sent = 0;
    const outcomes: ForwardOutcome[] = [];
    const front = http.createServer((req, res) => {
      void forward({
        node: { name: 'n1', reads } as unknown as ClusterNode,
        method: 'GET',
        path: '/v2/',
        headers: ['host', 'registry.test'],
        body: undefined,
        req,
        res,
        rewriter: new OriginRewriter(['http://n1'], 'http://lb'),
        headersTimeout: 30_000,
        retryOnGatewayError: false,
        deadlines,
        reclaimer: NO_RECLAIMER,
        onSent: () => void sent++,
      }).then((o) => outcomes.push(o));
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => (front.closeAllConnections(), front.close(() => resolve()))));
    const get = () =>
      new Promise<number>((resolve, reject) =>
        http.get(`http://127.0.0.1:${(front.address() as AddressInfo).port}/`, { agent: false }, (res) => res.resume().on('end', () => resolve(res.statusCode!))).on('error', reject),
      );
    assert.equal(await get(), 200);
    assert.equal(await get(), 200, 'the second GET went out again on a new connection');
    assert.deepEqual(outcomes.map((o) => o.phase), ['complete', 'complete']);
    assert.deepEqual({ watched: deadlines.size, sent }, { watched: 0, sent: 2 });
  });

  it("a second connection to a TLS node resumes the first one's session", async (t) => {
    const tmp = makeTempDir('tls-resume');
    t.after(tmp.remove);
    const pki = makeServerCert(tmp.dir);
    const reused: boolean[] = [];
    const server = https.createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, (req, res) => {
      reused.push((req.socket as TLSSocket).isSessionReused());
      // Each answer ends its connection: the next request needs a new one.
      res.writeHead(200, { 'content-length': 2, connection: 'close' });
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
    const reads = new ReadPool(new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`), { ...OPTIONS, ca: readFileSync(pki.caFile) });
    t.after(() => reads.close());
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve, reject) => {
        const h: ReadHandler = {
          onConnect() {},
          onHeaders: () => true,
          onData: (_c, written) => (written(), true),
          onComplete: () => resolve(),
          onError: reject,
        };
        reads.dispatch({ method: 'GET', path: '/v2/', headers: [], headersTimeout: 5_000 }, h);
      });
    }
    assert.deepEqual(reused, [false, true]);
  });
});

describe('read pool, as undici: the answer', () => {
  // A node answer with a length and chunked framing: passed on, the client would be told 3 bytes and get 5.
  it('a node answer with both Transfer-Encoding and Content-Length is refused (502), as undici refused it', async (t) => {
    const node = net.createServer((s) =>
      s.on('data', (head: Buffer) => {
        if (!head.toString('latin1').includes('\r\n\r\n')) return;
        s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      }),
    );
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise((resolve) => node.close(resolve)));
    const lb = await startApp([`http://127.0.0.1:${(node.address() as AddressInfo).port}`], { balance: { retries: { attempts: 1 } } });
    t.after(() => lb.close());
    const reply = await rawRequest(lb.url, 'GET /v2/a/manifests/latest HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\n\r\n');
    assert.equal(reply.status, 502, reply.text);
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, 'NODE_ANSWER_UNPARSEABLE: both Transfer-Encoding and Content-Length');
  });

  // forward.ts holds a head back until an upload's pin is stored: nothing after it may reach the client first.
  for (const [what, wire, expected] of [
    ['a body', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', ['head (paused)', 'resume', 'data ok', 'complete']],
    ['the end of an answer without a body', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', ['head (paused)', 'resume', 'complete']],
  ] as const) {
    it(`a handler that pauses on the head gets ${what} only once it resumes`, async (t) => {
      const node = net.createServer((s) => s.once('data', () => s.write(wire)));
      await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
      t.after(() => node.close());
      const pool = new ReadPool(new URL(`http://127.0.0.1:${(node.address() as AddressInfo).port}`), OPTIONS);
      t.after(() => pool.close());
      const events: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const h: ReadHandler = {
          onConnect() {},
          onHeaders(_s, _raw, resume) {
            events.push('head (paused)');
            setImmediate(() => {
              events.push('resume');
              resume();
            });
            return false;
          },
          onData(c, written) {
            events.push(`data ${c.toString()}`);
            written();
            return true;
          },
          onComplete: () => {
            events.push('complete');
            resolve();
          },
          onError: reject,
        };
        pool.dispatch({ method: 'GET', path: '/', headers: [], headersTimeout: 5_000 }, h);
      });
      assert.deepEqual(events, expected);
    });
  }
});
