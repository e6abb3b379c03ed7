import type http from 'node:http';
import { Socket } from 'node:net';
import type { Logger } from '../log/loggers.js';
import type { Clock } from '../util/clock.js';
import { LogRateLimit } from '../util/log-rate-limit.js';
import type { ClientLimits } from './client-limits.js';
import { MAX_PIPELINE_DEPTH } from './pipeline-gate.js';
import { normalizeIp, type TrustedPeers } from './trusted-peers.js';

export interface ConnectionGuardDeps {
  limits: ClientLimits;
  /** listen.maxConnections: above it, the connection pressure rules apply. */
  maxConnections: number;
  /** limits.connectionsPerClient: under pressure, an address holding this many gets no more (0: no share). */
  connectionsPerClient: number;
  trusted: TrustedPeers;
  logger: Logger;
  clock: Clock;
  /** TLS listeners cannot be answered in plain text before the handshake: they are closed instead. */
  tls: boolean;
}

/** What a rejection is answered with, by node:http's error code. */
const REJECTIONS: Record<string, { status: number; text: string; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, text: 'Request Header Fields Too Large', message: 'the request head is larger than 64 KiB' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, text: 'Request Timeout', message: 'the request head did not arrive in time (listen.headersTimeout)' },
  ERR_HTTP_HEADERS_TIMEOUT: { status: 408, text: 'Request Timeout', message: 'the request head did not arrive in time (listen.headersTimeout)' },
  TOO_MANY_CONNECTIONS: { status: 429, text: 'Too Many Requests', message: 'harbor-lb is at listen.maxConnections and this address holds limits.connectionsPerClient of them already' },
  SERVER_FULL: { status: 503, text: 'Service Unavailable', message: 'harbor-lb is at listen.maxConnections and no connection is idle' },
  CONNECT: { status: 405, text: 'Method Not Allowed', message: 'harbor-lb is not a forward proxy: CONNECT is refused' },
};
/** How long a connection closed after its answer stays half-open before the socket is closed. */
const LINGER_MS = 500;

const PARSE_ERROR = { status: 400, text: 'Bad Request', message: 'the request could not be parsed' };

/**
 * Connection-level rejections, each answered (a registry-style JSON error where the connection
 * can still take one) and logged with its reason and the client's address: parser errors and
 * oversized heads, head timeouts, CONNECT, and connections refused under pressure. Log lines are
 * sampled per reason (a client can make these at will); the count of those held back is kept.
 *
 * Connections are never refused while harbor-lb has fewer than listen.maxConnections open,
 * however many one address holds. At the bound, a new connection from an address that holds
 * limits.connectionsPerClient already is refused (429); any other first makes room by closing an
 * idle connection (no request under way) of the address holding the most, and is refused (503)
 * only when none is idle.
 */
export class ConnectionGuard {
  readonly #parseErrors = new WeakMap<Socket, string>();
  readonly #rejected = new WeakSet<Socket>();
  /** Client TCP connections per address (trusted proxies' too), and requests under way on each. */
  readonly #byIp = new Map<string, Set<Socket>>();
  readonly #active = new WeakMap<Socket, number>();
  /** A TCP connection's TLS socket, where a TLS listener's answers wait to be encrypted. */
  readonly #tlsOf = new WeakMap<Socket, Socket>();
  /** A TLS listener's request sockets, to the TCP connection under each. */
  readonly #rawOf = new WeakMap<Socket, Socket>();
  readonly #sample = new LogRateLimit(1000);
  /** Connections closing with a linger now (#linger). */
  readonly #closing = new WeakSet<Socket>();
  /** Rejections by reason (connection-level, and the per-request limits the handler counts here), for /metrics. */
  readonly counts = new Map<string, number>();

  count(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  constructor(private readonly deps: ConnectionGuardDeps) {}

  attach(server: http.Server): void {
    // A TLS listener's 'connection' is the raw TCP socket, as a plain one's; requests arrive on
    // the TLS socket made from it ('secureConnection').
    server.on('connection', (socket: Socket) => this.#onConnection(socket));
    if (this.deps.tls) server.on('secureConnection', (tls: Socket) => this.#linkTls(tls));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
    server.on('connect', (req: http.IncomingMessage, socket: Socket) => this.#reject(socket, 'CONNECT', normalizeIp(req.socket.remoteAddress)));
  }

  /**
   * A connection that began with a PROXY header harbor-lb does not take (listen.proxyProtocol):
   * closed unanswered, as a PROXY sender expects no answer to its header.
   */
  refuseProxyHeader(socket: Socket, ip: string, why: string): void {
    this.#refused(socket, 'PROXY_HEADER_REFUSED', { ip, status: 0, why }, 'rejected', `a PROXY protocol header was refused: ${why}`);
    socket.destroy();
  }

  /** Whether the connection was refused already (a request parsed from it meanwhile is dropped). */
  rejected(socket: Socket): boolean {
    return this.#rejected.has(socket);
  }

  /** The parser error that ended this connection's request, if one did (bad chunk framing, say). */
  parseErrorOf(socket: Socket): string | undefined {
    return this.#parseErrors.get(socket);
  }

  /**
   * Closes a connection harbor-lb will not serve further (a client pipelining too deep): no
   * answer can be written, as answers go out in order behind the one under way.
   */
  cutOff(socket: Socket, reason: 'PIPELINE_TOO_DEEP'): void {
    if (this.#rejected.has(socket)) return;
    const ip = normalizeIp(socket.remoteAddress);
    this.#refused(socket, reason, { ip, status: 0 }, 'closed', `more than ${MAX_PIPELINE_DEPTH} pipelined requests waiting`);
    socket.destroy();
  }

  /**
   * Closes a connection whose client went on sending a body its answer came before (UNREAD_BODY,
   * see unread-body.ts). The answer is out: it is followed by a FIN, so the client reads it and then
   * the end. The socket itself is closed only LINGER_MS later: closed at once with the client's
   * bytes unread, the kernel answers with a reset, which can take the answer with it before the
   * client has read it (Go's net/http waits the same 500 ms, nginx has lingering_close). `ip` is
   * the client's address as its routing line names it (behind a trusted proxy, not the proxy's).
   */
  closeAfterAnswer(socket: Socket, why: string, ip: string): void {
    if (this.#rejected.has(socket) || socket.destroyed) return;
    this.#refused(socket, 'UNREAD_BODY', { ip, status: 0, why }, 'closed', why);
    this.#linger(socket);
  }

  /**
   * node:http closes a connection whose answer says so (the client's `Connection: close`, HTTP/1.0,
   * harbor-lb's own 408) with destroySoon: at once, with whatever the client still sends unread,
   * which is the reset closeAfterAnswer avoids. While `bodyComing()` (the request being served has
   * not sent its whole body), that close lingers the same way; otherwise it is node:http's own.
   */
  lingerOnClose(socket: Socket, bodyComing: () => boolean): void {
    socket.destroySoon = () => (bodyComing() ? this.#linger(socket) : Socket.prototype.destroySoon.call(socket));
  }

  /** A FIN after what is written, the socket closed LINGER_MS later. */
  #linger(socket: Socket): void {
    if (socket.destroyed || this.#closing.has(socket)) return;
    this.#closing.add(socket);
    socket.end();
    const timer = this.deps.clock.setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref?.();
    socket.once('close', () => this.deps.clock.clearTimeout(timer));
  }

  /** A request began on the socket (one at a time on a connection, see PipelineGate). */
  requestStarted(socket: Socket): void {
    const raw = this.#rawOf.get(socket) ?? socket;
    this.#active.set(raw, (this.#active.get(raw) ?? 0) + 1);
  }

  requestEnded(socket: Socket): void {
    const raw = this.#rawOf.get(socket) ?? socket;
    const n = this.#active.get(raw);
    if (n !== undefined) this.#active.set(raw, n - 1);
  }

  /** The TLS socket requests arrive on is matched to its TCP connection by the client's port. */
  #linkTls(tls: Socket): void {
    for (const raw of this.#byIp.get(normalizeIp(tls.remoteAddress)) ?? []) {
      if (raw.remotePort === tls.remotePort) {
        this.#tlsOf.set(raw, tls);
        return void this.#rawOf.set(tls, raw);
      }
    }
  }

  #track(socket: Socket, ip: string): void {
    let set = this.#byIp.get(ip);
    if (set === undefined) this.#byIp.set(ip, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.#byIp.get(ip) === set) this.#byIp.delete(ip);
    });
  }

  #onConnection(socket: Socket): void {
    const ip = normalizeIp(socket.remoteAddress);
    // Every connection is known (a TLS one's requests counted on it, shutdown closing the idle ones).
    this.#track(socket, ip);
    // Behind a trusted proxy every client shares its address: its connections are not counted.
    if (this.deps.trusted.has(ip)) return;
    const limits = this.deps.limits;
    const held = limits.openConnection(ip);
    socket.once('close', () => limits.closeConnection(ip));
    if (limits.openConnections <= this.deps.maxConnections) return;
    const share = this.deps.connectionsPerClient;
    if (share > 0 && held > share) return this.#reject(socket, 'TOO_MANY_CONNECTIONS', ip);
    if (!this.#closeIdle(socket)) this.#reject(socket, 'SERVER_FULL', ip);
  }

  /**
   * Shutdown: closes every connection with no request on it and nothing left to write. One whose
   * answer was ended while its last bytes still wait for a slow client stays open until they left
   * (RequestHandler.idle): node:http's closeIdleConnections() takes it as idle and drops them.
   */
  closeIdle(): void {
    for (const sockets of this.#byIp.values()) {
      for (const s of sockets) {
        if (s.destroyed || (this.#active.get(s) ?? 0) > 0) continue;
        if (s.writableLength > 0 || (this.#tlsOf.get(s)?.writableLength ?? 0) > 0) continue;
        s.destroy();
      }
    }
  }

  /** Closes one idle connection of the address holding the most (the newcomer's own when it is that address); whether one was. */
  #closeIdle(newcomer: Socket): boolean {
    for (const ip of this.deps.limits.heaviest()) {
      for (const s of this.#byIp.get(ip) ?? []) {
        if (s === newcomer) continue;
        if ((this.#active.get(s) ?? 0) > 0 || s.destroyed) continue;
        this.count('IDLE_CLOSED');
        s.destroy();
        return true;
      }
    }
    return false;
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? 'UNKNOWN';
    // The client went away (mid-body, too: the parser's end-of-file state): nothing to answer.
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'HPE_INVALID_EOF_STATE') return void socket.destroy();
    // More bytes after a request that asked to close the connection: nothing after it is served
    // (RFC 9112 9.6). Its own answer is under way, and node:http closes the connection after it.
    if (code === 'HPE_CLOSED_CONNECTION') return void socket.pause();
    this.#parseErrors.set(socket, code);
    this.#reject(socket, code, normalizeIp(socket.remoteAddress));
  }

  /**
   * The connection is refused or closed for `reason`: marked (a request parsed from it meanwhile
   * is dropped), counted, and told in a connection_rejected line, at most one per reason a second.
   */
  #refused(socket: Socket, reason: string, line: { ip: string; status: number; why?: string }, done: 'rejected' | 'closed', text: string): void {
    this.#rejected.add(socket);
    this.count(reason);
    const held = this.#sample.take(reason, this.deps.clock.now());
    if (held === undefined) return;
    const { ip, status, why } = line;
    this.deps.logger.warn(
      { event: 'connection_rejected', reason, status, client: { ip }, ...(why === undefined ? {} : { why }), notLogged: held },
      `connection from ${ip} ${done} (${reason}): ${text}`,
    );
  }

  #reject(socket: Socket, reason: string, ip: string): void {
    const r = REJECTIONS[reason] ?? PARSE_ERROR;
    this.#refused(socket, reason, { ip, status: r.status }, 'rejected', r.message);
    // A response already under way on this connection cannot be followed by another one.
    const inProgress = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    // Before the TLS handshake nothing can be answered in plain text.
    if (this.deps.tls && (reason === 'TOO_MANY_CONNECTIONS' || reason === 'SERVER_FULL')) return void socket.destroy();
    if (!socket.writable || inProgress?.headersSent === true) return void socket.destroy();
    const body = JSON.stringify({ errors: [{ code: r.status === 429 ? 'TOOMANYREQUESTS' : 'BAD_REQUEST', message: r.message, detail: null }] });
    socket.end(
      `HTTP/1.1 ${r.status} ${r.text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    socket.destroySoon();
  }
}
