import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ReadPool, type ReadHandler } from '../../src/nodes/read-pool.js';

const BLOB = randomBytes(24 * 1024 * 1024 + 123);
const DIGEST = createHash('sha256').update(BLOB).digest('hex');

interface Result {
  status: number;
  digest: string;
  error?: Error;
}

/**
 * A handler that keeps each chunk a while (as node:http does, writing on a later tick), pauses
 * now and then, and hashes a chunk only when it lets it go: a buffer read into again too early
 * shows as a wrong digest.
 */
function slowHandler(done: (r: Result) => void): ReadHandler {
  const hash = createHash('sha256');
  let status = 0;
  let resume: () => void = () => {};
  let n = 0;
  let held: Array<() => void> = [];
  const flush = () => {
    const now = held;
    held = [];
    for (const f of now) f();
  };
  return {
    onConnect() {},
    onHeaders(s, _raw, r) {
      status = s;
      resume = r;
      return true;
    },
    onData(chunk, written) {
      held.push(() => {
        hash.update(chunk);
        written();
      });
      n++;
      if (n % 3 === 0) {
        // Paused: let go of everything later, then read on.
        setTimeout(() => {
          flush();
          resume();
        }, 1);
        return false;
      }
      setImmediate(flush);
      return true;
    },
    onComplete() {
      setTimeout(() => {
        flush();
        done({ status, digest: hash.digest('hex') });
      }, 5);
    },
    onError(error) {
      done({ status, digest: '', error });
    },
  };
}

function pull(pool: ReadPool, path = '/v2/lib/a/blobs/sha256:x', method: 'GET' | 'HEAD' = 'GET'): Promise<Result> {
  return new Promise((resolve) => pool.dispatch({ method, path, headers: ['host', 'registry.test'], headersTimeout: 10_000 }, slowHandler(resolve)));
}

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<URL> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))));
}

const OPTIONS = { connectTimeout: 5_000, bodyTimeout: 10_000, keepAliveTimeout: 10_000, maxIdle: 4 };

describe('read pool: reused read buffers against a real HTTP server', () => {
  let server: Server;
  let url: URL;
  const connections = new Set<Socket>();
  let perSocket = new WeakMap<Socket, number>();
  let dropSecond = false;

  before(async () => {
    server = createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      // A node that closed a kept-alive connection just as the next request came.
      if (dropSecond && n === 2) return req.socket.destroy();
      if (req.url!.endsWith('/chunked')) {
        res.writeHead(200);
        for (let at = 0; at < BLOB.length; at += 1_000_003) res.write(BLOB.subarray(at, at + 1_000_003));
        return res.end();
      }
      res.writeHead(200, { 'content-length': BLOB.length, 'docker-content-digest': `sha256:${DIGEST}` });
      res.end(BLOB);
    });
    server.on('connection', (s) => connections.add(s));
    url = await listen(server);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('hands every byte over intact to a handler that lets chunks go late and pauses, length-framed and chunked', async () => {
    const pool = new ReadPool(url, OPTIONS);
    const results = await Promise.all([pull(pool), pull(pool), pull(pool, '/v2/lib/a/blobs/chunked')]);
    pool.close();
    for (const r of results) {
      assert.equal(r.error, undefined);
      assert.equal(r.status, 200);
      assert.equal(r.digest, DIGEST);
    }
  });

  it('reads a long body in pieces of up to 1 MiB, for at most 8 bodies per pool at once, each place freed when its body ends, whole or cut', async () => {
    const pool = new ReadPool(url, OPTIONS);
    const paused: Array<() => void> = [];
    let allPaused: () => void = () => {};
    const tenPaused = new Promise<void>((resolve) => (allPaused = resolve));
    let largest = 0;
    const pulls = Array.from({ length: 10 }, (_, i) =>
      new Promise<Error | undefined>((resolve) => {
        let resume: () => void = () => {};
        let chunks = 0;
        let abort: (err?: Error) => void = () => {};
        pool.dispatch(
          { method: 'GET', path: '/v2/lib/a/blobs/sha256:x', headers: [], headersTimeout: 10_000 },
          {
            onConnect: (a) => (abort = a),
            onHeaders: (_s, _raw, r) => ((resume = r), true),
            onData: (chunk, written) => {
              largest = Math.max(largest, chunk.length);
              written();
              // The second piece is read after the head: each body asked for a large place by then.
              if (++chunks !== 2) return true;
              paused.push(() => (i === 9 ? abort(new Error('cut')) : resume()));
              if (paused.length === 10) allPaused();
              return false;
            },
            onComplete: () => resolve(undefined),
            onError: resolve,
          },
        );
      }),
    );
    await tenPaused;
    assert.equal(pool.largeReaders, 8, 'ten bodies of 24 MiB at once: eight read in large pieces');
    for (const go of paused) go();
    const ends = await Promise.all(pulls);
    assert.equal(ends.filter((e) => e === undefined).length, 9);
    assert.equal(ends[9]?.message, 'cut');
    assert.equal(pool.largeReaders, 0, 'every place is free again');
    assert.ok(largest > 64 * 1024, `pieces larger than a 64 KiB read (largest ${largest})`);
    assert.ok(largest <= 1024 * 1024);
    pool.close();
  });

  it('hands nothing more to a handler that aborted on the head (a 503 to retry elsewhere)', async () => {
    const pool = new ReadPool(url, OPTIONS);
    let abort: (err?: Error) => void = () => {};
    let data = 0;
    const error = await new Promise<Error>((resolve) =>
      pool.dispatch(
        { method: 'GET', path: '/v2/lib/a/blobs/sha256:x', headers: [], headersTimeout: 10_000 },
        {
          onConnect: (a) => (abort = a),
          onHeaders: () => {
            abort(new Error('held back'));
            return false;
          },
          onData: () => {
            data++;
            return true;
          },
          onComplete: () => resolve(new Error('completed')),
          onError: resolve,
        },
      ),
    );
    pool.close();
    assert.equal(error.message, 'held back');
    assert.equal(data, 0);
  });

  it('keeps a connection alive for the next pull', async () => {
    connections.clear();
    const pool = new ReadPool(url, OPTIONS);
    assert.equal((await pull(pool)).digest, DIGEST);
    assert.equal((await pull(pool)).digest, DIGEST);
    pool.close();
    assert.equal(connections.size, 1);
  });

  it("reads a HEAD's answer as a head alone (its Content-Length is the GET's) and keeps the connection for a GET", async () => {
    connections.clear();
    const pool = new ReadPool(url, OPTIONS);
    const head = await pull(pool, '/v2/lib/a/blobs/sha256:x', 'HEAD');
    assert.equal(head.error, undefined);
    assert.equal(head.status, 200);
    assert.equal(head.digest, createHash('sha256').digest('hex'), 'no body');
    assert.equal((await pull(pool)).digest, DIGEST);
    pool.close();
    assert.equal(connections.size, 1);
  });

  it('sends a pull again on a new connection when the kept one was closed before any answer', async () => {
    connections.clear();
    perSocket = new WeakMap();
    dropSecond = true;
    try {
      const pool = new ReadPool(url, OPTIONS);
      assert.equal((await pull(pool)).digest, DIGEST);
      const second = await pull(pool);
      pool.close();
      assert.equal(second.error, undefined);
      assert.equal(second.digest, DIGEST);
      assert.equal(connections.size, 2);
    } finally {
      dropSecond = false;
    }
  });
});

describe('read pool: the request as the client sent it', () => {
  it('sends header bytes as node:http read them (latin1), byte for byte', async () => {
    let seen: string | undefined;
    const server = createServer((req, res) => {
      seen = req.rawHeaders[req.rawHeaders.findIndex((h) => h.toLowerCase() === 'x-name') + 1];
      res.writeHead(200, { 'content-length': 0 }).end();
    });
    const url = await listen(server);
    try {
      const pool = new ReadPool(url, OPTIONS);
      const r = await new Promise<Result>((resolve) =>
        pool.dispatch({ method: 'GET', path: '/v2/a/blobs/sha256:x', headers: ['x-name', Buffer.from('café', 'utf8').toString('latin1')], headersTimeout: 10_000 }, slowHandler(resolve)),
      );
      pool.close();
      assert.equal(r.status, 200);
      assert.equal(Buffer.from(seen!, 'latin1').toString('utf8'), 'café');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('read pool: the heads it will not write', () => {
  /** What the pool does with a request: the error it fails with, or the head a raw node read. */
  async function attempt(headers: string[], headersChecked?: boolean, path = '/v2/a/manifests/x'): Promise<{ error?: Error; head?: string }> {
    const heads: string[] = [];
    const node = createTcpServer((s) => {
      let head = '';
      s.on('data', (d) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        heads.push(head);
        s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
      });
    });
    const url = await listen(node);
    try {
      const pool = new ReadPool(url, OPTIONS);
      const r = await new Promise<Result>((resolve) => pool.dispatch({ method: 'GET', path, headers, headersChecked, headersTimeout: 10_000 }, slowHandler(resolve)));
      pool.close();
      return { error: r.error, head: heads[0] };
    } finally {
      node.close();
    }
  }

  it('refuses, before anything is written, what could smuggle a request in or frame it otherwise', async () => {
    const refused: Array<[string, string[], string?]> = [
      ['a name that is no token', ['x name', 'v']],
      ['a value with CR LF', ['x-a', 'v\r\nGET /other HTTP/1.1']],
      ['a value with LF', ['x-a', 'v\nx']],
      ['a value with NUL', ['x-a', 'v\u0000']],
      ['a value with characters latin1 writes as CR LF', ['x-a', 'v\u010d\u010aX-Smuggled: 1']],
      ['two Hosts', ['host', 'a', 'Host', 'b']],
      ['a framing header', ['Transfer-Encoding', 'chunked']],
      ['a body length', ['content-length', '5']],
      ['a path with a line break', ['host', 'a'], '/v2/\r\nx'],
      ['a path with a character latin1 writes as LF', ['host', 'a'], '/v2/\u010ax'],
    ];
    for (const [what, headers, path] of refused) {
      const r = await attempt(headers, undefined, path);
      assert.equal(r.error?.name, 'InvalidArgumentError', what);
      assert.equal(r.head, undefined, `${what}: nothing reached the node`);
    }
  });

  it('with headers request-check passed, still refuses two Hosts, a framing header and a body length, and writes the rest as it is', async () => {
    for (const headers of [['host', 'a', 'Host', 'b'], ['Connection', 'close'], ['content-length', '5']]) {
      const r = await attempt(headers, true);
      assert.equal(r.error?.name, 'InvalidArgumentError', headers.join(': '));
      assert.equal(r.head, undefined);
    }
    const r = await attempt(['Host', 'registry.test', 'content-length', '0', 'x-forwarded-for', '127.0.0.1'], true);
    assert.equal(r.error, undefined);
    assert.equal(r.head, 'GET /v2/a/manifests/x HTTP/1.1\r\nHost: registry.test\r\nx-forwarded-for: 127.0.0.1\r\n\r\n');
  });
});

describe('read pool: a node whose answer is not HTTP', () => {
  it('fails the pull with the parser error the routing line reads, and a cut as undici words it; stray bytes after a whole answer do not cut it', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n folded\r\n\r\nhello',
      'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nonly this',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\r\n',
    ];
    let i = 0;
    const raw = createTcpServer((s) => {
      s.once('data', () => {
        const answer = answers[i++]!;
        s.end(answer);
      });
    });
    const url = await listen(raw);
    try {
      const pool = new ReadPool(url, OPTIONS);
      const bad = await pull(pool);
      assert.equal(bad.error?.name, 'HTTPParserError');
      const cut = await pull(pool);
      assert.equal((cut.error as { code?: string } | undefined)?.code, 'UND_ERR_SOCKET');
      const extra = await pull(pool);
      assert.equal(extra.error, undefined, 'a whole response followed by stray bytes is whole');
      assert.equal(extra.digest, createHash('sha256').update('hello').digest('hex'));
      pool.close();
    } finally {
      raw.close();
    }
  });
});

/**
 * A node on raw TCP that keeps connections alive and answers each request head with `answer`
 * (its socket and the request's path); counts its connections and holds the last one's close.
 */
function keepAliveNode(answer: (s: Socket, path: string) => void): { server: ReturnType<typeof createTcpServer>; connections: number; lastClosed: Promise<unknown> } {
  const node = {
    connections: 0,
    lastClosed: Promise.resolve() as Promise<unknown>,
    server: createTcpServer((s) => {
      node.connections++;
      node.lastClosed = once(s, 'close');
      let seen = '';
      s.on('data', (d: Buffer) => {
        seen += d.toString('latin1');
        for (let end = seen.indexOf('\r\n\r\n'); end !== -1; end = seen.indexOf('\r\n\r\n')) {
          const path = seen.slice(seen.indexOf(' ') + 1, seen.indexOf(' HTTP/'));
          seen = seen.slice(end + 4);
          answer(s, path);
        }
      });
    }),
  };
  return node;
}

describe('read pool: a node that says how long it keeps an idle connection (Keep-Alive: timeout=N)', () => {
  it('does not keep a connection the node closes within the margin, and keeps one the node keeps longer', async (t) => {
    const node = keepAliveNode((s, path) => {
      // undici's margin is 2 s: a node that keeps a connection 1 s must not be sent another request on it.
      const timeout = path.endsWith('/short') ? 1 : path.endsWith('/mid') ? 3 : 30;
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=${timeout}, max=100\r\n\r\nhello`);
    });
    const url = await listen(node.server);
    t.after(() => node.server.close());
    const pool = new ReadPool(url, OPTIONS);
    t.after(() => pool.close());
    for (let i = 0; i < 2; i++) assert.equal((await pull(pool, '/v2/a/short')).error, undefined);
    assert.equal(node.connections, 2, 'timeout=1: a new connection for each request');
    for (let i = 0; i < 3; i++) assert.equal((await pull(pool, '/v2/a/long')).error, undefined);
    assert.equal(node.connections, 3, 'timeout=30: one connection kept for all');
    // timeout=3 on the kept connection: kept 1 s more (3 s less the margin), not the pool's 10 s.
    assert.equal((await pull(pool, '/v2/a/mid')).error, undefined);
    assert.equal(node.connections, 3);
    const idleSince = performance.now();
    await node.lastClosed;
    assert.ok(performance.now() - idleSince < 5_000, 'closed by the pool after the hint less the margin');
  });
  it('does not close a kept connection under a request that outlasts its idle time', async (t) => {
    const node = keepAliveNode((s, path) => {
      // timeout=3: kept idle 1 s; the slow answer comes after that 1 s has run out.
      const answer = () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=3\r\n\r\nhello');
      if (path.endsWith('/slow')) setTimeout(answer, 1_500);
      else answer();
    });
    const url = await listen(node.server);
    t.after(() => node.server.close());
    const pool = new ReadPool(url, OPTIONS);
    t.after(() => pool.close());
    assert.equal((await pull(pool, '/v2/a/first')).error, undefined);
    const slow = await pull(pool, '/v2/a/slow');
    assert.equal(slow.error, undefined, 'the idle timer of the connection it was sent on did not cut it');
    assert.equal(slow.digest, createHash('sha256').update('hello').digest('hex'));
    assert.equal(node.connections, 1);
    // Idle again: kept for the next request, and closed by its (restarted) idle timer after that.
    assert.equal((await pull(pool, '/v2/a/again')).error, undefined);
    assert.equal(node.connections, 1);
    const idleSince = performance.now();
    await node.lastClosed;
    assert.ok(performance.now() - idleSince < 5_000, 'closed by the pool after its idle time, not by the pool closing');
  });
});
