import { connect, isIP, type OnReadOpts, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { errors } from 'undici';
import { Http1ResponseReader, ResponseParseError } from './http1-response.js';
import { oneOfNames } from '../util/header-names.js';
import { isHttpToken } from '../util/http-token.js';
import { LARGE_READ_SIZE, READ_SIZE } from '../util/read-sizes.js';
import type { WriteBatch } from '../util/write-batch.js';

/**
 * Keep-alive connections to one node for requests without a body (GET and HEAD: pulls, manifests,
 * tags, the UI's reads, token requests), each connection reading into buffers the pool reuses
 * (the `onread` of net.Socket and of tls.TLSSocket) and parsing the answer itself (http1-response.ts).
 *
 * Why not undici: on Node 24 a fresh buffer per read cost a full garbage collection per 64 MiB
 * streamed and about 2 s of CPU per GiB pulled, against 1.0 for a relay that reuses its buffers;
 * and a small GET costs a request worker about 6 µs less CPU here than through undici's dispatch
 * (docs/benchmarks.md). A body chunk handed on is a view into the buffer it was read into, so a
 * buffer is read into again only once the handler has said, for each chunk, that it is written out
 * (the `written` callback of onData). A chunk never reported written leaves its buffer to the
 * garbage collector.
 *
 * It drives the same steps of an attempt (onConnect, onHeaders, onData, onComplete, onError) that
 * forward.ts's handler takes from undici's handler callbacks, raises undici's error classes for
 * timeouts, cuts and requests it will not send, and so the attempt that uses it reads its failures
 * as it reads undici's. How many connections it opens is bounded by the caller (node-admission.ts
 * holds a slot of the node's pool for each request in flight).
 */
export interface ReadHandler {
  onConnect(abort: (err?: Error) => void): void;
  /** rawHeaders alternate name and value, latin1 strings byte for byte. */
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  /**
   * `written`: to be called once the chunk is written out and referenced nowhere, so its buffer may
   * be read into again. `last`: the response ends with this chunk (onComplete follows).
   */
  onData(chunk: Buffer, written: () => void, last: boolean): boolean;
  onComplete(trailers: null): void;
  onError(err: Error): void;
}

/** One read's buffer and how many hold it: the read being handled, and each chunk of it not yet written. */
interface Lease {
  buf: Buffer;
  holders: number;
}

export interface ReadRequest {
  method: 'GET' | 'HEAD';
  path: string;
  /** Alternating names and values. */
  headers: readonly string[];
  /**
   * The headers passed request-check's `unforwardable` (every name a token, no value with a
   * control character): the head is built without reading them again for what it already refused.
   * The path, Host, Content-Length and the framing headers are still checked.
   */
  headersChecked?: boolean;
  /**
   * Time the node has to start answering, after which no gap between body chunks may last the
   * pool's bodyTimeout. 0: the caller keeps both time limits (AttemptDeadlines), as with undici.
   */
  headersTimeout: number;
  /** Where the request's head waits for the end of the turn (write-batch.ts); without one, it goes out at once. */
  writes?: WriteBatch;
}

export interface ReadPoolOptions {
  connectTimeout: number;
  /** Longest silence while a body is read. */
  bodyTimeout: number;
  /** How long an idle connection is kept. */
  keepAliveTimeout: number;
  /** The most idle connections kept. */
  maxIdle: number;
  /** For a node behind https: its private CA (nodes[].ca); undefined, the public roots. */
  ca?: Buffer;
}

/**
 * Bodies per pool (per node, per worker) read in large pieces (LARGE_READ_SIZE) at once; the
 * others read READ_SIZE at a time. A body paused for its client holds two of them (the piece
 * being written, and the next read's buffer, which Node asks for at once): at most twice this
 * many MiB per pool wait for slow clients.
 */
const LARGE_READERS = 8;
/**
 * Read buffers the pool keeps for its connections to read into in turn (node:http writes a
 * response on the next tick, so a busy connection holds one or two). Shared by the connections, so
 * the many a burst of small requests opens keep no buffers of their own while idle.
 */
const SPARE_BUFFERS = 16;
const SPARE_LARGE_BUFFERS = 2;
/** How much sooner than a node's own Keep-Alive timeout an idle connection is closed (undici's keepAliveTimeoutThreshold). */
const KEEP_ALIVE_MARGIN_MS = 2_000;

export class ReadPool {
  readonly #idle: Connection[] = [];
  readonly #spare: Buffer[] = [];
  readonly #spareLarge: Buffer[] = [];
  /** Exchanges reading their body in large pieces now (LARGE_READERS). */
  #largeReaders = 0;
  #closed = false;
  /** A TLS node's last session ticket: a new connection resumes it rather than doing a full handshake (as undici's connector). */
  tlsSession: Buffer | undefined;

  /** The node's host (and port) for a request that names none: the URL's getter builds a string per call. */
  readonly #host: string;

  constructor(
    private readonly url: URL,
    private readonly options: ReadPoolOptions,
  ) {
    this.#host = url.host;
  }

  dispatch(request: ReadRequest, handler: ReadHandler): void {
    if (this.#closed) {
      handler.onError(new errors.ClientDestroyedError());
      return;
    }
    let head: string;
    try {
      head = requestHead(request, this.#host);
    } catch (err) {
      handler.onError(err as Error);
      return;
    }
    let idle = this.#idle.pop();
    // Its idle timer may have closed it, its 'close' not yet seen.
    while (idle !== undefined && idle.socket.destroyed) idle = this.#idle.pop();
    if (idle !== undefined) idle.take();
    new ReadExchange(this, idle ?? this.connect(), request, head, handler, idle !== undefined).start();
  }

  /** A new connection to the node. */
  connect(): Connection {
    return new Connection(this, this.url, this.options, (c) => this.#forget(c));
  }

  /** A buffer to read into: a large one for a body that holds one of the LARGE_READERS places. */
  buffer(large: boolean): Buffer {
    if (large) return this.#spareLarge.pop() ?? Buffer.allocUnsafeSlow(LARGE_READ_SIZE);
    return this.#spare.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
  }

  /** A buffer nothing refers to any more: kept for the next read, within the bound for its size. */
  giveBack(buf: Buffer): void {
    const spare = buf.length === READ_SIZE ? this.#spare : this.#spareLarge;
    if (spare.length < (spare === this.#spare ? SPARE_BUFFERS : SPARE_LARGE_BUFFERS)) spare.push(buf);
  }

  /** One of the LARGE_READERS places, if one is free. */
  takeLargeReader(): boolean {
    if (this.#largeReaders >= LARGE_READERS) return false;
    this.#largeReaders++;
    return true;
  }

  releaseLargeReader(): void {
    this.#largeReaders--;
  }

  /** Bodies reading in large pieces now. */
  get largeReaders(): number {
    return this.#largeReaders;
  }

  /**
   * A connection whose response ended cleanly: kept for the next request, within the bounds. A
   * node that said how long it keeps an idle connection (`hintMs`, from `Keep-Alive: timeout=N`) is
   * taken at its word less undici's margin, never longer than the pool's own idle time: a request
   * sent as the node closes the connection would find it gone. A hint within the margin means the
   * connection is not kept.
   */
  release(c: Connection, hintMs?: number): void {
    const idleMs = hintMs === undefined ? this.options.keepAliveTimeout : Math.min(this.options.keepAliveTimeout, hintMs - KEEP_ALIVE_MARGIN_MS);
    if (this.#closed || idleMs <= 0 || this.#idle.length >= this.options.maxIdle) c.socket.destroy();
    else {
      this.#idle.push(c);
      c.idle(idleMs);
    }
  }

  get bodyTimeout(): number {
    return this.options.bodyTimeout;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #forget(c: Connection): void {
    const i = this.#idle.indexOf(c);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Closes idle connections now; those in use close when their response ends. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.socket.destroy();
  }
}

/** One keep-alive connection, reading into the pool's buffers. */
class Connection {
  readonly socket: Socket;
  exchange: ReadExchange | undefined;
  connected = false;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleMs = 0;
  /** Carrying a request (taken): not idle, whatever its idle timer says. */
  #busy = true;

  constructor(
    private readonly pool: ReadPool,
    url: URL,
    options: ReadPoolOptions,
    onGone: (c: Connection) => void,
  ) {
    const secure = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (secure ? 443 : 80));
    // Called by Node for the buffer of each read (after the one before was handled).
    const onread: OnReadOpts = { buffer: () => pool.buffer(this.exchange?.largeReads() === true), callback: (n, buf) => this.#read(n, buf as Buffer) };
    // tls.connect takes `onread` as net.connect does (Node's types do not say so). The name is sent
    // for SNI and checked against the certificate, as undici does; an address is checked as one.
    const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = { host, port, servername: isIP(host) === 0 ? host : undefined, ca: options.ca, ALPNProtocols: ['http/1.1'], session: pool.tlsSession, onread };
    this.socket = secure ? connectTls(tlsOptions) : connect({ host, port, noDelay: true, onread });
    if (secure) {
      this.socket.setNoDelay(true);
      this.socket.on('session', (session: Buffer) => (pool.tlsSession = session));
    }
    const timer = setTimeout(() => this.socket.destroy(new errors.ConnectTimeoutError()), options.connectTimeout);
    // A TLS connection is ready for the request once its handshake is done.
    this.socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      this.connected = true;
      this.exchange?.connected();
    });
    this.socket.on('error', (err) => this.exchange?.lost(err));
    this.socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(this.#idleTimer);
      onGone(this);
      this.exchange?.lost(undefined);
    });
  }

  /** Kept idle: closed after `ms` unless taken. */
  idle(ms: number): void {
    this.exchange = undefined;
    this.#busy = false;
    // One timer per connection, restarted each time it goes idle: a keep-alive connection goes
    // idle once per request, and a new timer each time cost more than the request's parsing.
    if (this.#idleTimer !== undefined && this.#idleMs === ms) this.#idleTimer.refresh();
    else {
      clearTimeout(this.#idleTimer);
      this.#idleMs = ms;
      this.#idleTimer = setTimeout(this.#idleTimeUp, ms);
      this.#idleTimer.unref();
    }
  }

  /** Taken for a request: the idle timer is left to run out, and does nothing then (see #idleTimeUp). */
  take(): void {
    this.#busy = true;
  }

  readonly #idleTimeUp = (): void => {
    if (!this.#busy) this.socket.destroy();
  };

  #read(n: number, buf: Buffer): boolean {
    const ex = this.exchange;
    // Bytes on an idle connection: no request is waiting for them; the connection cannot be trusted.
    if (ex === undefined) {
      this.socket.destroy();
      return false;
    }
    const lease: Lease = { buf, holders: 1 };
    const more = ex.read(buf.subarray(0, n), lease);
    this.settle(lease);
    return more;
  }

  /** One holder of a read's buffer is done with it; the last one gives it back. */
  settle(lease: Lease): void {
    if (--lease.holders === 0) this.pool.giveBack(lease.buf);
  }
}

/** One request and its response on one connection. */
class ReadExchange {
  readonly #reader: Http1ResponseReader;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #paused = false;
  #received = false;
  #lease: Lease | undefined;
  /** The handler paused on the head: the body and the end wait until it resumes. */
  #heldOnHead = false;
  /** What of the read that brought the head is left (body, perhaps none), fed once the handler resumes. */
  #rest: { chunk: Buffer; lease: Lease } | undefined;
  /** This request sent again on a new connection (see lost): the handler's abort is now that one's. */
  #successor: ReadExchange | undefined;
  /** This exchange holds one of its pool's LARGE_READERS places. */
  #large = false;

  constructor(
    private readonly pool: ReadPool,
    private readonly conn: Connection,
    private readonly request: ReadRequest,
    /** The request's head, as it goes out (requestHead). */
    private readonly head: string,
    private readonly handler: ReadHandler,
    /** On a connection used before: a close before any answer is a stale connection, tried again once on a new one. */
    private readonly reused: boolean,
    /** The handler was told already that the request is going out (onConnect): this is it sent again. */
    private readonly announced = false,
  ) {
    this.#reader = new Http1ResponseReader(request.method, {
      // Once ended (the handler aborted on the head), the rest of the read goes nowhere.
      head: (status, raw, text) => {
        if (this.#ended) return false;
        clearTimeout(this.#timer);
        this.#arm(this.pool.bodyTimeout, () => new errors.BodyTimeoutError());
        if (this.handler.onHeaders(status, raw, this.#resume, text)) return true;
        this.#pause();
        this.#heldOnHead = true;
        return false;
      },
      body: (chunk) => {
        if (this.#ended) return;
        const lease = this.#lease!;
        lease.holders++;
        if (!this.handler.onData(chunk, () => this.conn.settle(lease), this.#reader.done)) this.#pause();
      },
    });
  }

  start(): void {
    this.conn.exchange = this;
    if (this.conn.connected) this.connected();
  }

  connected(): void {
    if (this.#ended) return;
    if (!this.announced) this.handler.onConnect(this.#abort);
    if (this.#ended) return;
    const { writes } = this.request;
    if (writes === undefined) this.#send();
    else writes.later(this.#send);
    this.#arm(this.request.headersTimeout, () => new errors.HeadersTimeoutError());
  }

  readonly #send = (): void => {
    // Ended, or its connection lost, while the head waited (write-batch.ts): nothing goes out.
    if (this.#ended || this.conn.exchange !== this || this.conn.socket.destroyed) return;
    // Header bytes as node:http read them (latin1), byte for byte, as undici writes them.
    this.conn.socket.write(this.head, 'latin1');
  };

  #arm(ms: number, error: () => Error): void {
    // The caller keeps the time limits.
    if (this.request.headersTimeout === 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#abort(error()), ms);
  }

  /** One read: false stops reading until resumed. */
  read(chunk: Buffer, lease: Lease): boolean {
    if (this.#ended) return false;
    this.#received = true;
    if (this.#timer !== undefined && this.#reader.headRead) this.#timer.refresh();
    return this.#feed(chunk, lease);
  }

  /** Feeds a read, or the rest of one, to the reader: false stops reading until resumed. */
  #feed(chunk: Buffer, lease: Lease): boolean {
    this.#lease = lease;
    let used: number;
    try {
      used = this.#reader.feed(chunk);
    } catch (err) {
      this.#abort(err as ResponseParseError);
      return false;
    }
    if (this.#ended) return false;
    if (this.#heldOnHead) {
      // Nothing after the head reaches the handler before it resumes; the rest stays in its buffer.
      lease.holders++;
      this.#rest = { chunk: chunk.subarray(used), lease };
      return false;
    }
    if (this.#reader.done) {
      this.#complete();
      // Kept alive: read on, so a close of the idle connection is seen.
      return !this.conn.socket.destroyed;
    }
    return !this.#paused;
  }

  /** Whether the next read is a large one: a body of a MiB or more still to come, with a place free (or held). */
  largeReads(): boolean {
    if (this.#large) return true;
    if ((this.#reader.bodyLeft ?? 0) < LARGE_READ_SIZE || this.#ended) return false;
    this.#large = this.pool.takeLargeReader();
    return this.#large;
  }

  /** Ended: its large-read place, if it held one, is free for another body. */
  #end(): void {
    this.#ended = true;
    if (!this.#large) return;
    this.#large = false;
    this.pool.releaseLargeReader();
  }

  /** The handler's client is not reading: no body timeout while it waits (undici's rule too). */
  #pause(): void {
    this.#paused = true;
    clearTimeout(this.#timer);
  }

  readonly #resume = (): void => {
    if (this.#ended || !this.#paused) return;
    this.#paused = false;
    this.#arm(this.pool.bodyTimeout, () => new errors.BodyTimeoutError());
    const rest = this.#rest;
    if (rest !== undefined) {
      this.#rest = undefined;
      this.#heldOnHead = false;
      const more = this.#feed(rest.chunk, rest.lease);
      this.conn.settle(rest.lease);
      if (!more) return;
    }
    this.conn.socket.resume();
  };

  readonly #abort = (err?: Error): void => {
    if (this.#successor !== undefined) return this.#successor.#abort(err);
    if (this.#ended) return;
    this.conn.socket.destroy();
    this.fail(err ?? new errors.RequestAbortedError());
  };

  #complete(): void {
    this.#end();
    clearTimeout(this.#timer);
    if (this.#reader.keepAlive && !this.conn.socket.destroyed) this.pool.release(this.conn, this.#reader.keepAliveHintMs);
    else this.conn.socket.destroy();
    this.handler.onComplete(null);
  }

  fail(err: Error): void {
    if (this.#ended) return;
    this.#end();
    clearTimeout(this.#timer);
    this.conn.exchange = undefined;
    this.conn.socket.destroy();
    this.handler.onError(err);
  }

  /** The connection failed (err) or closed while this exchange had it. */
  lost(err: Error | undefined): void {
    if (this.#ended) return;
    if (err === undefined && this.#reader.closed()) return this.#complete();
    if (this.reused && !this.#received && !this.pool.closed) {
      // The node had closed the idle connection as this request went out: once more, on a new one.
      this.#end();
      clearTimeout(this.#timer);
      this.#successor = new ReadExchange(this.pool, this.pool.connect(), this.request, this.head, this.handler, false, true);
      this.#successor.start();
      return;
    }
    this.fail(err ?? new errors.SocketError('other side closed'));
  }
}

/**
 * What would end a line or the head early: a header or target holding one could smuggle a request
 * in. The head is written as latin1, each character as its low byte, so a character past 0xff is
 * one too ("\u010d" would go out as a CR).
 */
const LINE_BREAK = /[\r\n\0\u0100-\uffff]/;
/** Headers that frame or steer the connection itself: the pool's, never a request's (as undici refuses them). */
const FRAMING = new Set(['transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect']);
/** Which of the names the request head is checked for a header is ('' for any other). */
const headName = oneOfNames(['host', 'content-length', ...FRAMING]);

/**
 * The request's head as the pool writes it: header bytes as node:http read them (latin1), byte for
 * byte, as undici writes them, with the node's host when the request names none. Throws undici's
 * InvalidArgumentError for what the pool will not write (undici's refusals, and what they guard
 * against): the front door refuses all of these first (request-check.ts), so this is the last
 * line, not the filter.
 */
function requestHead(request: ReadRequest, nodeHost: string): string {
  const { method, path, headers } = request;
  if (path.charCodeAt(0) !== 47 /* "/" */ || LINE_BREAK.test(path) || path.includes(' ')) refuse('invalid request path');
  let text = `${method} ${path} HTTP/1.1\r\n`;
  let hosts = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (request.headersChecked !== true) {
      if (!isHttpToken(name)) refuse('invalid header name');
      if (LINE_BREAK.test(value)) refuse(`invalid ${name} header`);
    }
    const lower = headName(name);
    if (lower === 'host' && ++hosts > 1) refuse('more than one host header');
    if (lower !== '' && lower !== 'host' && lower !== 'content-length') refuse(`invalid ${lower} header`);
    if (lower === 'content-length') {
      // A request without a body may say so (curl -X GET -d '', some clients' empty content), and
      // the zero length is left off, as undici does; any other length is a body it does not have.
      if (value.trim() !== '0') refuse('invalid content-length header');
      continue;
    }
    text += `${name}: ${value}\r\n`;
  }
  if (hosts === 0) text += `host: ${nodeHost}\r\n`;
  return `${text}\r\n`;
}

function refuse(why: string): never {
  throw new errors.InvalidArgumentError(why);
}
