import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { BufferReclaimer } from '../../src/util/buffer-reclaimer.js';
import { UNREAD_BODY_LIMIT } from '../../src/proxy/unread-body.js';
import { startApp, type StartedApp } from '../support/app.js';
import { startServer, type TestServer } from '../support/servers.js';

const MiB = 1024 * 1024;
/** Far more than harbor-lb reads after answering, and than loopback's socket buffers hold. */
const DECLARED = 256 * MiB;

class CountingReclaimer implements BufferReclaimer {
  bytes = 0;
  allocated(bytes: number): number {
    this.bytes += bytes;
    return 0;
  }
  released(): void {}
  close(): void {}
}

interface Sent {
  /** The answer's status line. */
  status: string;
  /** The answer's body arrived whole (as long as its Content-Length says). */
  wholeAnswer: boolean;
  /** harbor-lb ended the connection cleanly (a FIN after the answer), not with a reset. */
  ended: boolean;
  /** Body bytes the client got into its socket before harbor-lb closed the connection (or all of them). */
  sent: number;
  closed: boolean;
}

/**
 * Sends a request head and then `declared` bytes of body (`chunk` over and over), as fast as the
 * connection takes it, until it is all sent or harbor-lb closes the connection. Once all of it is
 * sent, `then` may send a next request on the same connection and read its status line.
 */
function upload(url: string, head: string, declared: number, then?: string, chunk = Buffer.alloc(64 * 1024, 0x61)): Promise<Sent & { next?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let text = '';
    let sent = 0;
    let closed = false;
    let ended = false;
    let settled = false;
    const sock = net.connect(Number(port), hostname);
    const statusOf = (from: number) => /HTTP\/1\.1 \d{3}/.exec(text.slice(from))?.[0] ?? '';
    const done = (next?: string) => {
      if (settled) return;
      settled = true;
      const at = text.indexOf('\r\n\r\n');
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? -1);
      resolve({ status: statusOf(0), wholeAnswer: at > 0 && text.length - at - 4 >= length, ended, sent, closed, next });
      sock.destroy();
    };
    // A reset once harbor-lb closes the socket (the client's unread bytes) is expected; what counts is what came before it.
    sock.on('error', () => {});
    sock.on('end', () => (ended = true));
    sock.on('close', () => {
      closed = true;
      done();
    });
    sock.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const second = text.indexOf('HTTP/1.1', 1);
      if (then !== undefined && second > 0) done(statusOf(second));
    });
    const pump = (): void => {
      while (!closed && sent < declared) {
        const piece = chunk.subarray(0, Math.min(chunk.length, declared - sent));
        sent += piece.length;
        if (!sock.write(piece)) return void sock.once('drain', pump);
      }
      if (closed) return;
      if (then !== undefined) sock.write(then);
      // Everything was taken: nothing closed the connection (a keep-alive one stays open).
      else sock.end(() => setImmediate(() => done()));
    };
    sock.once('connect', () => {
      sock.write(head);
      pump();
    });
  });
}

let node: TestServer;
let lb: StartedApp;
const reclaimer = new CountingReclaimer();

before(async () => {
  node = await startServer((req, res) => {
    // An upload refused before its body is read, as a registry refuses an expired token.
    if (req.url?.includes('/early/')) return void res.writeHead(401, { 'content-type': 'application/json', 'content-length': 2 }).end('{}');
    req.resume();
    req.on('end', () => res.writeHead(201, { 'content-length': 0 }).end());
  });
  lb = await startApp([node.url], {}, { reclaimer });
});

after(async () => {
  await lb?.close();
  await node?.close();
});

const put = (path: string, length: number) => `PUT ${path} HTTP/1.1\r\nhost: lb\r\ncontent-type: application/octet-stream\r\ncontent-length: ${length}\r\n\r\n`;

describe('a body the answer came before is read no further than 1 MiB after the answer', () => {
  it('a request harbor-lb refuses (a dot segment): the connection is closed, not read to the end, and the dropped chunks are reported', async () => {
    const before = reclaimer.bytes;
    const r = await upload(lb.url, put('/v2/r/../x/blobs/uploads/u1?digest=sha256:00', DECLARED), DECLARED);
    assert.match(r.status, / 400$/);
    assert.ok(r.closed && r.sent < DECLARED, `harbor-lb took ${r.sent} of ${DECLARED} bytes and ${r.closed ? 'closed' : 'kept'} the connection`);
    assert.ok(r.wholeAnswer && r.ended, 'the client reads the whole answer and then the end of the connection, before any reset');
    assert.ok(reclaimer.bytes - before > UNREAD_BODY_LIMIT, `reported ${reclaimer.bytes - before} bytes`);
    const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
    assert.match(metrics, /^harbor_lb_client_rejections_total\{reason="UNREAD_BODY"\} [1-9]/m);
    const line = await lb.logs.waitFor((l) => l.event === 'connection_rejected' && l.reason === 'UNREAD_BODY');
    assert.match(String(line.why), /more than 1048576 bytes/);
  });

  it('a chunked body whose chunks carry one byte in 60 KB (sizes padded with zeros) is cut by what the connection read', async () => {
    const piece = Buffer.from(`${'0'.repeat(60_000)}1\r\nX\r\n`);
    const head = 'PUT /v2/r/../x/blobs/uploads/u1?digest=sha256:00 HTTP/1.1\r\nhost: lb\r\ntransfer-encoding: chunked\r\n\r\n';
    const r = await upload(lb.url, head, 64 * MiB, undefined, piece);
    assert.match(r.status, / 400$/);
    assert.ok(r.closed && r.sent < 64 * MiB, `harbor-lb took ${r.sent} of ${64 * MiB} bytes and ${r.closed ? 'closed' : 'kept'} the connection`);
    assert.ok(r.wholeAnswer && r.ended, 'the client reads the whole answer and then the end of the connection, before any reset');
  });

  for (const [what, head] of [
    ['Connection: close', `PUT /v2/r/../x/blobs/uploads/u1?digest=sha256:00 HTTP/1.1\r\nhost: lb\r\nconnection: close\r\ncontent-length: ${DECLARED}\r\n\r\n`],
    ['HTTP/1.0', `PUT /v2/r/../x/blobs/uploads/u1?digest=sha256:00 HTTP/1.0\r\nhost: lb\r\ncontent-length: ${DECLARED}\r\n\r\n`],
  ]) {
    it(`a refused request with ${what}, which node:http closes itself: the client reads the whole answer and a FIN before any reset`, async () => {
      const r = await upload(lb.url, head!, DECLARED);
      assert.match(r.status, / 400$/);
      assert.ok(r.closed && r.sent < DECLARED, `harbor-lb took ${r.sent} of ${DECLARED} bytes and ${r.closed ? 'closed' : 'kept'} the connection`);
      assert.ok(r.wholeAnswer && r.ended, `the client read ${r.wholeAnswer ? 'the whole' : 'not all of the'} answer and ${r.ended ? 'a FIN' : 'no FIN'} before the reset`);
    });
  }

  it("a node's early answer to an upload: the client gets it, and the rest of the body is not read", async () => {
    const r = await upload(lb.url, put('/v2/r/early/blobs/uploads/u1?digest=sha256:00', DECLARED), DECLARED);
    assert.match(r.status, / 401$/);
    assert.ok(r.closed && r.sent < DECLARED, `harbor-lb took ${r.sent} of ${DECLARED} bytes and ${r.closed ? 'closed' : 'kept'} the connection`);
    assert.ok(r.wholeAnswer && r.ended, 'the client reads the whole answer and then the end of the connection, before any reset');
  });

  it('an upload the node answers after reading it whole keeps its connection, however long the body', async () => {
    const cuts = async () => /^harbor_lb_client_rejections_total\{reason="UNREAD_BODY"\} (\d+)$/m.exec(await (await fetch(`${lb.adminUrl}/metrics`)).text())?.[1];
    const before = await cuts();
    const length = 8 * MiB;
    const r = await upload(lb.url, put('/v2/r/blobs/uploads/u1?digest=sha256:00', length), length, 'GET /v2/r/manifests/v1 HTTP/1.1\r\nhost: lb\r\n\r\n');
    assert.match(r.status, / 201$/);
    assert.match(r.next ?? '', / 201$/, `the next request on the connection was answered: ${r.next}`);
    assert.equal(await cuts(), before);
  });

  it('a body that ends within the limit keeps its connection for the next request', async () => {
    const length = UNREAD_BODY_LIMIT / 2;
    const r = await upload(lb.url, put('/v2/r/../x/blobs/uploads/u1?digest=sha256:00', length), length, 'GET /v2/r/manifests/v1 HTTP/1.1\r\nhost: lb\r\n\r\n');
    assert.match(r.status, / 400$/);
    assert.equal(r.sent, length);
    assert.match(r.next ?? '', / 200$| 201$/, `the next request on the connection was answered: ${r.next}`);
  });
});
