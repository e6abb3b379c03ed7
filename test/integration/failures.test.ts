import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import request from 'supertest';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { deadPort, startServer } from '../support/servers.js';

const MiB = 1024 ** 2;
const CHUNK = Buffer.alloc(64 * 1024, 1);

describe('failures on either side', () => {
  it('a client that hangs up mid-download closes the node side', async (t) => {
    let resolveNode!: (finished: boolean) => void;
    const nodeSaw = new Promise<boolean>((r) => (resolveNode = r));
    const node = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': 1024 * MiB });
      res.on('close', () => resolveNode(res.writableFinished));
      const pump = () => {
        while (!res.destroyed && res.write(CHUNK));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const req = http.get(`${lb.url}/v2/r/blobs/sha256:1`, { agent: false }, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= MiB) req.destroy();
      });
    });
    req.on('error', () => {});
    assert.equal(await nodeSaw, false, 'the node response was cut, not finished');
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.equal(line.error, 'CLIENT_GONE');
    assert.equal(lb.app.nodes.get('n1')!.traffic.failures, 0, 'a client hanging up is not a node failure');
  });

  it('a client that hangs up mid-upload closes the node side', async (t) => {
    let resolveNode!: (complete: boolean) => void;
    const nodeSaw = new Promise<boolean>((r) => (resolveNode = r));
    const node = await startServer((req) => {
      req.on('data', () => {});
      req.on('close', () => resolveNode(req.complete));
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const req = http.request(`${lb.url}/v2/r/blobs/uploads/u1`, { method: 'PATCH', agent: false, headers: { 'content-length': 100 * MiB } });
    req.on('error', () => {});
    for (let i = 0; i < 16; i++) if (!req.write(CHUNK)) await once(req, 'drain');
    req.destroy();
    assert.equal(await nodeSaw, false, 'the node saw an incomplete upload end, not a short complete one');
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.equal(line.error, 'CLIENT_GONE');
    assert.equal(lb.app.nodes.get('n1')!.traffic.failures, 0);
  });

  for (const framing of ['content-length', 'chunked'] as const) {
    it(`a node that cuts a ${framing} body short cuts the client's response, never a clean end`, async (t) => {
      const node = await startServer((_req, res) => {
        res.writeHead(200, framing === 'content-length' ? { 'content-length': 10 * MiB } : {});
        res.write(Buffer.alloc(MiB, 2), () => res.socket?.destroy());
      });
      const lb = await startApp([node.url]);
      t.after(async () => {
        await lb.close();
        await node.close();
      });
      const outcome = await new Promise<{ bytes: number; complete: boolean; ended: boolean }>((resolve) => {
        http
          .get(`${lb.url}/v2/r/blobs/sha256:2`, { agent: false }, (res) => {
            let bytes = 0;
            let ended = false;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => (ended = true));
            res.on('error', () => {});
            res.on('close', () => resolve({ bytes, complete: res.complete, ended }));
          })
          .on('error', () => {});
      });
      assert.equal(outcome.complete, false, 'the client must see an incomplete response');
      assert.equal(outcome.ended, false, "the response must not end as if it were whole");
      assert.ok(outcome.bytes <= MiB);
      const line = await lb.logs.waitFor((l) => l.event === 'request');
      assert.match(String(line.error), /^NODE_CUT_RESPONSE/);
    });
  }

  // Regression: a node that answers an upload before reading it (an early 401 or 404) left the
  // rest of the body unread; the client's TCP window filled and it stalled for a minute. (Past
  // 1 MiB after the answer the connection is then closed, unread-body.test.ts: the agent opens another.)
  it('a node that answers before reading the upload: the client gets the answer at once and goes on', { timeout: 20_000 }, async (t) => {
    const node = await startServer((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}');
      req.resume();
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const first = await send(`${lb.url}/v2/r/blobs/uploads/u1`, { method: 'PATCH', agent, body: Buffer.alloc(32 * MiB, 3) });
    assert.equal(first.status, 401);
    const second = await send(`${lb.url}/v2/`, { agent });
    assert.equal(second.status, 401, 'the next request is served');
  });

  it('an unreachable node gives a registry-style JSON error', async (t) => {
    const lb = await startApp([`http://127.0.0.1:${await deadPort()}`]);
    t.after(() => lb.close());
    // No node answers at all: the registry-style error docker, podman and skopeo print.
    await request(lb.url)
      .get('/v2/library/a/manifests/latest')
      .expect(503)
      .expect('retry-after', '5')
      .expect('content-type', /^application\/json/)
      .expect({ errors: [{ code: 'UNAVAILABLE', message: 'no Harbor node is available', detail: { reason: 'the node refused the connection' } }] });
    const head = await request(lb.url).head('/v2/library/a/manifests/latest').expect(503).expect('retry-after', '5');
    assert.equal(head.text, undefined, 'HEAD gets no body');
  });

  it('an upload whose node is unreachable goes to another node, body intact', async (t) => {
    const node = await startServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(Buffer.concat(chunks)));
    });
    const dead = `http://127.0.0.1:${await deadPort()}`;
    // Round robin starts at the dead node, so the first attempt fails before anything is sent.
    const lb = await startApp([dead, node.url], { balance: { policy: 'round-robin' } });
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const payload = Buffer.alloc(256 * 1024, 7);
    const r = await send(`${lb.url}/v2/r/blobs/uploads/u1`, { method: 'PATCH', body: payload, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(payload));
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.equal(line.attempts, 2);
    assert.equal(line.reason, 'failover');
    assert.equal(line.node, 'n2');
  });

  it('a node that never answers gives 504 after the headers timeout', async (t) => {
    const node = await startServer(() => {});
    const lb = await startApp([node.url], { proxy: { headersTimeout: '300ms' } });
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const r = await request(lb.url).get('/v2/').expect(504).expect('content-type', /^application\/json/);
    assert.equal(r.body.errors[0].code, 'UNAVAILABLE');
  });

  // Issue 18: undici raises parser errors without a code, so such an answer was logged as UNKNOWN.
  // A GET or HEAD is read by harbor-lb's own reader (the read pool), anything else by undici's: both name the reason.
  it('a node answer that is not HTTP/1.1 is logged with the parser\'s reason, answered 502, and not charged to the client', async (t) => {
    const cases = [
      { method: 'GET', answer: 'HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok', reason: 'a malformed status line' },
      { method: 'GET', answer: 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok', reason: 'a control character in a header value' },
      { method: 'DELETE', answer: 'HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\nok', reason: 'Invalid status code' },
      { method: 'DELETE', answer: 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 2\r\n\r\nok', reason: 'Invalid header value char' },
    ];
    // By path: harbor-lb's own check of the node (which the failures ask for) gets a plain answer.
    const node = net.createServer((s) =>
      s.once('data', (head: Buffer) => {
        const i = Number(/manifests\/(\d)/.exec(head.toString())?.[1]);
        s.end(cases[i]?.answer ?? 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
      }),
    );
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', () => resolve()));
    t.after(() => new Promise((resolve) => node.close(resolve)));
    const lb = await startApp([`http://127.0.0.1:${(node.address() as net.AddressInfo).port}`], { balance: { retries: { attempts: 1 } } });
    t.after(() => lb.close());
    for (const [i, { method, reason }] of cases.entries()) {
      const r = await send(`${lb.url}/v2/a/manifests/${i}`, { method });
      assert.equal(r.status, 502, `${method} ${reason}`);
      assert.match(r.body.toString(), new RegExp(`could not be parsed \\(${reason}\\)`));
      const line = (await lb.logs.waitForRequests(i + 1))[i]!;
      assert.equal(line.error, `NODE_ANSWER_UNPARSEABLE: ${reason}`);
    }
    assert.equal(lb.logs.lines.filter((l) => l.event === 'connection_rejected').length, 0, 'the node\'s broken answer is not the client\'s rejection');
  });

  it('refuses absolute-form targets with a registry error', async (t) => {
    const lb = await startApp([`http://127.0.0.1:${await deadPort()}`]);
    t.after(() => lb.close());
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(lb.url);
      http
        .request({ host: url.hostname, port: url.port, path: 'http://elsewhere.example/', agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 400);
  });
});
