import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { routeOf } from './classify.js';
import { ProxyError, sendRegistryError, type RegistryErrorCode } from './errors.js';
import { failureClassOf, REPLAYABLE_BODY, type Exchange } from './exchange.js';
import { runExchange } from './run-exchange.js';
import { buildRequestHeaders } from './headers.js';
import { PipelineGate } from './pipeline-gate.js';
import type { ProxyDeps } from './proxy-deps.js';
import { RequestBody } from './request-body.js';
import { chunked, holdFewPieces } from './tiny-pieces.js';
import { credentialRefusal, pathRefusal, protocolRefusal, targetRefusal, unforwardable, type Refusal } from './request-check.js';
import { loggablePath, readRequestHead, SubjectCache } from './request-info.js';
import type { RoutingError } from './routing-error.js';
import { normalizeIp } from './trusted-peers.js';
import { requestIdentity, tagResponse, TraceIds } from './request-identity.js';
import { unsentBytes } from '../util/unsent-bytes.js';

export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Requests being proxied now. */
  inflight(): number;
  /** Answers ended whose last bytes still wait in harbor-lb for a slow client. */
  unflushed(): number;
  /** Requests received since start (a worker's share, in /-/status). */
  handled(): number;
  /**
   * Resolves once no request is in flight and every answer ended has left harbor-lb (handed to the
   * kernel, or its client gone): at once when so.
   */
  idle(): Promise<void>;
}

/** A request harbor-lb read, before it is refused or sent on. */
interface Received {
  ex: Exchange;
  /** Why harbor-lb answers it itself, before any node is involved. */
  refusal: Refusal | undefined;
  /** A body small enough to read whole up front (so it can be sent again), or any body at all. */
  body: 'none' | 'small' | 'streamed';
}

/** What ended a request on harbor-lb's side rather than the node's: the client too slow. */
interface ClientCut {
  status?: number;
  error: RoutingError;
}

/**
 * The front of the request path: one request per connection at a time, read and checked, then
 * run as an exchange with the nodes (exchange.ts); one routing line when it ends, however it ends.
 */
export function createRequestHandler(deps: ProxyDeps): RequestHandler {
  return new FrontDoor(deps);
}

class FrontDoor implements RequestHandler {
  readonly #deps: ProxyDeps;
  readonly #subjects = new SubjectCache();
  readonly #gate: PipelineGate;
  readonly #verifiedToken: (token: string) => boolean;
  #seq = 0;
  /** New traces' ids (this front door's own block of random bytes). */
  readonly #traceIds = new TraceIds();
  #inflight = 0;
  /** Answers ended whose last bytes still wait in harbor-lb for a slow client. */
  #unflushed = 0;
  #waiters: Array<() => void> = [];

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
    this.#gate = new PipelineGate((socket) => deps.connections.cutOff(socket, 'PIPELINE_TOO_DEEP'));
    this.#verifiedToken = (token) => deps.guard?.verifier.cached(token)?.ok === true;
  }

  inflight(): number {
    return this.#inflight;
  }

  handled(): number {
    return this.#seq;
  }

  unflushed(): number {
    return this.#unflushed;
  }

  idle(): Promise<void> {
    return this.#inflight === 0 && this.#unflushed === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  #settled(): void {
    if (this.#inflight > 0 || this.#unflushed > 0 || this.#waiters.length === 0) return;
    for (const w of this.#waiters) w();
    this.#waiters = [];
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    // Before node:http parses on into the body: a chunked one may come in pieces of a byte.
    if (chunked(req)) holdFewPieces(req);
    if (req.socket.destroyed) return void res.destroy();
    // The connection was refused already (over its client's connection limit), or an answer before
    // this request closed it: nothing after that is served (RFC 9112 9.6). Its close is under way
    // (lingering, so the client reads that answer before any reset): left to it, not hastened.
    if (this.#deps.connections.rejected(req.socket) || req.socket.writableEnded) return void req.resume();
    this.#gate.enter(req.socket, res, () => this.#serve(req, res));
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    this.#inflight++;
    // The connection is busy until the request ends: under connection pressure it is never the idle one closed.
    this.#deps.connections.requestStarted(req.socket);
    const { ex, refusal, body } = this.#receive(req, res);
    const continued = expectsContinue(req);
    // A request without a body that asked to be told to send it: go ahead at once, as node:http
    // would, or it would close the connection after the answer for a body that never comes.
    if (body === 'none' && continued) res.writeContinue();
    // Whoever closes this connection while a body may still be coming (node:http for `Connection:
    // close` or HTTP/1.0, the 408 for a trickled body), the client reads its answer before any reset.
    if (body !== 'none') this.#deps.connections.lingerOnClose(req.socket, () => !req.complete);
    // Counted, never refused: a client with many in flight waits behind others for node connections.
    this.#deps.limits.startRequest(ex.clientIp);
    let cut: ClientCut | undefined;
    let unwatch: (() => void) | undefined;
    const end = (): void => {
      unwatch?.();
      this.#finish(ex, cut, started);
    };
    if (refusal !== undefined) {
      // The client's problem, found before any node is involved: nothing is charged to a node.
      ex.record.status = refusal.status;
      ex.record.error = refusal.error;
      ex.record.bytesOut = sendRegistryError(res, ex.method === 'HEAD', refusal.status, refusal.code, `harbor-lb cannot forward this request: ${refusal.reason}`);
      return end();
    }
    if (body !== 'none') {
      const tiny = !chunked(req) ? undefined : { pieces: this.#deps.tinyPieces.of(req.socket, ex.clientIp), over: (why: string) => this.#refuseTinyPieces(ex, why, (c) => (cut = c)) };
      const goAhead = continued
        ? () => {
            if (!res.headersSent) res.writeContinue();
          }
        : undefined;
      ex.body = new RequestBody(req, this.#deps.reclaimer, tiny, goAhead, tiny === undefined ? this.#deps.largeReads : undefined);
    }
    unwatch = this.#watchRate(ex, (c) => (cut = c));
    const coalescer = this.#deps.coalescer;
    const run = () => runExchange(this.#deps, ex);
    const go = (): Promise<void> => (coalescer === undefined ? run() : coalescer.serve(ex, run));
    // Without a body to read first, the exchange starts now, not a turn of the microtask queue later.
    let served: Promise<void>;
    try {
      served = body === 'small' ? ex.body!.preload().then(go) : go();
    } catch (err) {
      served = Promise.reject(err);
    }
    void served.then(end, (err: unknown) => {
      this.#failed(ex, err);
      end();
    });
  }

  /** Reads what the request says: its client, user, route, target, and the headers the node will get. */
  #receive(req: IncomingMessage, res: ServerResponse): Received {
    const url = req.url ?? '';
    const method = req.method ?? 'GET';
    const reqId = `${this.#deps.instanceId}-${(++this.#seq).toString(36)}`;
    const peerIp = normalizeIp(req.socket.remoteAddress);
    const trusted = this.#deps.trusted.has(peerIp);
    const clientIp = trusted ? this.#deps.trusted.clientOf(peerIp, headerOf(req, 'x-forwarded-for')) : peerIp;
    const head = readRequestHead(req.rawHeaders, this.#subjects, this.#verifiedToken);
    const q = url.indexOf('?');
    // Routed on the normalized path, which is also what the node gets (the query as sent).
    const target = routeOf(q < 0 ? url : url.slice(0, q));
    const { path, route } = target;
    const forwardUrl = q < 0 ? path : path + url.slice(q);
    const originForm = url.charCodeAt(0) === 47; /* "/" */
    const identity = requestIdentity(req.rawHeaders, reqId, this.#traceIds);
    tagResponse(res, identity.requestId);
    // harbor-lb upgrades no connection (Harbor speaks neither WebSocket nor h2c): such a request is
    // answered as plain HTTP/1.1. But node:http's parser stops reading at a request that asks to
    // upgrade and drops what came behind it in the same read, so a request pipelined there would
    // never be answered; closing after the answer tells that client to send it again.
    if (req.headers.upgrade !== undefined) res.setHeader('connection', 'close');
    const headers = originForm ? buildRequestHeaders(req.rawHeaders, { peerIp, clientIp, proto: this.#deps.proto, trusted, identity, identityEncoding: route === 'token' }) : [];
    const refusal = !originForm
      ? targetRefusal()
      : target.refused !== undefined
        ? pathRefusal(target.refused)
        : (protocolRefusal(req.httpVersionMinor, req.headers.host, req.headers.expect) ?? credentialRefusal(head) ?? unforwardable(method, forwardUrl, req.rawHeaders, headers));
    const user = head.user === undefined ? { ip: clientIp } : { ip: clientIp, user: head.user, userFrom: head.userFrom };
    const ex: Exchange = {
      req,
      res,
      method,
      url: forwardUrl,
      path,
      headers,
      body: undefined,
      record: { event: 'request', reqId, requestId: identity.requestId, traceId: identity.traceId, client: user, method, path: loggablePath(url), route, node: null, reason: null, affinity: 'none', status: 0, durationMs: 0, attempts: 0, bytesIn: 0, bytesOut: 0 },
      route,
      failureClass: failureClassOf(route, path),
      clientIp,
      user: head.user,
      userFrom: head.userFrom,
      bearer: head.bearer,
      session: head.session === 'ambiguous' ? undefined : head.session,
      ranged: req.headers.range !== undefined,
    };
    const body = !head.hasBody ? 'none' : head.contentLength !== undefined && head.contentLength <= REPLAYABLE_BODY ? 'small' : 'streamed';
    return { ex, refusal, body };
  }

  /**
   * The request's body came in too many tiny pieces (tiny-pieces.ts): refused with 400 as a
   * trickled body is with 408, the attempt ended as the client's doing, the connection closed
   * once the answer is out. Counted, never against a node.
   */
  #refuseTinyPieces(ex: Exchange, why: string, onCut: (cut: ClientCut) => void): void {
    const { res, body } = ex;
    this.#deps.connections.count('BODY_IN_TINY_PIECES');
    if (!res.headersSent) {
      onCut({ status: 400, error: `BODY_IN_TINY_PIECES: ${why}` });
      this.#answerAndClose(ex, 400, 'BAD_REQUEST', `the request body came in pieces too small to forward (${why}): send it in larger pieces`);
    } else {
      onCut({ error: `BODY_IN_TINY_PIECES: ${why}` });
      res.destroy();
    }
    body?.refuse(new ProxyError('BODY_IN_TINY_PIECES', 400, 'request body in tiny pieces'));
  }

  /**
   * Answers the client's body with a registry error and closes the connection once the answer is
   * out (lingering, see ConnectionGuard.lingerOnClose): the rest of the body is not waited for.
   */
  #answerAndClose(ex: Exchange, status: number, code: RegistryErrorCode, message: string): void {
    ex.record.bytesOut = sendRegistryError(ex.res, ex.method === 'HEAD', status, code, message, null, ['connection', 'close']);
    ex.res.once('finish', () => ex.req.socket.destroySoon());
  }

  /** Watches the transfer's pace while harbor-lb waits on the client; too slow, and the client is cut off (limits.minBodyRate). */
  #watchRate(ex: Exchange, onCut: (cut: ClientCut) => void): () => void {
    const { res, body } = ex;
    const socket = ex.req.socket;
    return this.#deps.rateWatch.watch({
      read: () => socket.bytesRead,
      // bytesWritten counts what is queued too: less what waits, what the connection took.
      written: () => socket.bytesWritten - socket.writableLength,
      unsent: () => unsentBytes(socket),
      waitingOnClient: () => (body?.waiting ?? false) || res.writableNeedDrain,
      cut: () => {
        this.#deps.connections.count('MIN_BODY_RATE');
        if (!res.headersSent) {
          onCut({ status: 408, error: 'CLIENT_TOO_SLOW: request body' });
          // The rest of a trickled body is not waited for.
          this.#answerAndClose(ex, 408, 'TIMEOUT', `the request body arrived slower than ${this.#deps.minBodyRate} bytes/s (limits.minBodyRate)`);
          body?.abort(new ProxyError('CLIENT_TOO_SLOW', 408, 'request body too slow'));
        } else {
          // The status is what the node answered (set when the exchange ends): only the error is ours.
          onCut({ error: 'CLIENT_TOO_SLOW: response body' });
          res.destroy();
        }
      },
    });
  }

  /** The exchange threw: the client hung up while its small body was read, or harbor-lb has a bug. */
  #failed(ex: Exchange, err: unknown): void {
    const { res, record, body } = ex;
    if (body?.clientFailed) {
      record.error = 'CLIENT_GONE';
      record.bytesIn = body.bytes;
      // An answer harbor-lb already wrote (408 for a trickled body) is left to flush.
      if (!res.writableEnded) res.destroy();
    } else {
      record.error = `INTERNAL_ERROR: ${(err as Error).message}`;
      if (!res.headersSent) record.bytesOut = sendRegistryError(res, ex.method === 'HEAD', 500, 'UNAVAILABLE', 'internal proxy error');
      else res.destroy();
    }
  }

  /** Writes the routing line (what ended the request, however it ended) and lets go of the request's counts. */
  #finish(ex: Exchange, cut: ClientCut | undefined, started: number): void {
    const { record, req } = ex;
    this.#deps.limits.endRequest(ex.clientIp);
    if (cut !== undefined) {
      // Cut for a too slow body: that, not the client leaving, is what happened.
      if (cut.status !== undefined) record.status = cut.status;
      record.error = cut.error;
    } else if (record.error === 'CLIENT_GONE') {
      // The request ended on a parser error (bad chunk framing): the client got a 400 for it.
      const parseError = this.#deps.connections.parseErrorOf(req.socket);
      if (parseError !== undefined) {
        record.status = 400;
        record.error = `BAD_REQUEST_FRAMING: ${parseError}`;
      }
    }
    record.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    this.#deps.logger.write(record);
    this.#deps.metrics.finished(record);
    // The connection is busy until its answer's end is made: a small answer's end may wait for the
    // end of the turn (write-batch.ts), and until then the connection is no idle one to close.
    const { res } = ex;
    if (res.writableEnded || res.destroyed) this.#deps.connections.requestEnded(req.socket);
    else this.#deps.writes.later(() => this.#deps.connections.requestEnded(req.socket));
    // A body the answer came before is read no further than unread-body.ts allows. A forwarded
    // body's dropped chunks are counted by its RequestBody (released already, unless the exchange threw).
    ex.body?.release();
    // A body refused for its tiny pieces is read no further at all: its connection closes after the answer.
    if (ex.body?.refused !== true) this.#deps.unreadBodies.watch(req, ex.res, ex.clientIp, ex.body === undefined ? this.#deps.reclaimer : undefined);
    // An answer ended with its last piece still here (a slow reader) is not done for a drain:
    // closing its connection now would drop those bytes ('close' comes once they left, or the client did).
    if (res.writableLength > 0 && !res.destroyed) {
      this.#unflushed++;
      res.once('close', () => {
        this.#unflushed--;
        this.#settled();
      });
    }
    this.#inflight--;
    this.#settled();
  }
}

/** The test node:http makes before it emits 'checkContinue' instead of 'request' (and sends no 100 Continue itself). */
function expectsContinue(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && CONTINUE.test(req.headers.expect ?? '');
}
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
