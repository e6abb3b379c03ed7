import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RetryBudget } from '../balance/retry-budget.js';
import type { Pins } from '../pins/pins.js';
import type { AttemptVerdict, OutlierDetector } from '../health/outlier-detector.js';
import type { RoutingLog } from '../log/loggers.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import { isTokenRejection } from '../token/challenge.js';
import type { TokenGuard } from '../token/token-guard.js';
import type { BodyRateWatch } from './body-rate.js';
import type { ClientLimits } from './client-limits.js';
import { PipelineGate } from './pipeline-gate.js';
import type { RequestMetrics } from './request-metrics.js';
import type { RoutingError } from './routing-error.js';
import type { Admitted, NodeAdmission, PoolKind } from './node-admission.js';
import type { AnswerWatch } from '../health/answer-watch.js';
import type { ConnectionGuard } from './connection-guard.js';
import { routeOf, type Route } from './classify.js';
import { ProxyError, sendRegistryError } from './errors.js';
import { nodeFailure, nodeFailureLabel } from '../nodes/node-failure.js';
import { forward, RequestBody, type ForwardOutcome } from './forward.js';
import { buildRequestHeaders, type OriginRewriter } from './headers.js';
import { credentialRefusal, pathRefusal, unforwardable } from './request-check.js';
import { loggablePath, readRequestHead, SubjectCache } from './request-info.js';
import type { SessionCookie, UserSource } from '../pins/pins.js';
import { isBodylessRead, mayRetry, needsBudget } from './retry-policy.js';
import { normalizeIp, type TrustedPeers } from './trusted-peers.js';

export type RouteReason = 'pinned' | 'hashed' | 'balanced' | 'retried' | 'failover' | 'reissued';

export interface ProxyDeps {
  nodes: NodeSet;
  /** Places each request: its pin, else its key's hash, else balancing; learns pins from answers. */
  pins: Pins;
  rewriter: OriginRewriter;
  trusted: TrustedPeers;
  /** The routing log: one line per request. */
  logger: RoutingLog;
  /** Request counters and latencies, recorded with the routing line and per attempt. */
  metrics: RequestMetrics;
  proto: 'http' | 'https';
  /** Passive failure detection: what each attempt says about its node. */
  outliers: OutlierDetector;
  budget: RetryBudget;
  /** Token awareness; absent when token.rootCert is not configured. */
  guard: TokenGuard | undefined;
  /** Attempts per request, the first included. */
  maxAttempts: number;
  headersTimeout: number;
  uploadHeadersTimeout: number;
  /** Unique per app instance, so request ids from two proxies never collide. */
  instanceId: string;
  /** A UI request carrying a CSRF cookie was refused 403: the CSRF key check should run. */
  onCsrfRefusal?: () => void;
  /** Per-client counts: requests in flight. */
  limits: ClientLimits;
  /** Fair shares of each node's connections: an attempt takes a slot before it is sent. */
  admission: NodeAdmission;
  /** Attempts waiting for an answer: a slow one asks for a check, and a node taken out lets them go elsewhere. */
  answers: AnswerWatch;
  /** Minimum body rate while the proxy waits on a client. */
  rateWatch: BodyRateWatch;
  minBodyRate: number;
  /** Connection-level rejections (for the parser error behind a request that ended badly). */
  connections: ConnectionGuard;
}

/** The routing line's fields, written once when the request ends. */
interface RoutingRecord {
  event: 'request';
  reqId: string;
  client: { ip: string; user?: string; userFrom?: UserSource };
  method: string;
  path: string;
  route: Route;
  node: string | null;
  reason: RouteReason | null;
  affinity: 'upload' | 'session' | 'client' | 'none';
  status: number;
  durationMs: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  error?: RoutingError;
}

export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Requests being proxied now. */
  inflight(): number;
  /** Resolves once no request is in flight (at once when none is). */
  idle(): Promise<void>;
}

export function createRequestHandler(deps: ProxyDeps): RequestHandler {
  const subjects = new SubjectCache();
  const gate = new PipelineGate((socket) => deps.connections.cutOff(socket, 'PIPELINE_TOO_DEEP'));
  const verifiedToken = (token: string): boolean => deps.guard?.verifier.cached(token)?.ok === true;
  let seq = 0;
  let inflight = 0;
  let waiters: Array<() => void> = [];
  const finished = (): void => {
    if (--inflight === 0 && waiters.length > 0) {
      for (const w of waiters) w();
      waiters = [];
    }
  };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    // The connection was refused already (over its client's connection limit): its answer is sent.
    if (deps.connections.rejected(req.socket) || req.socket.destroyed) return void res.destroy();
    gate.enter(req.socket, res, () => serve(req, res));
  }

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    // The connection is busy until the request ends: under connection pressure it is never the idle one closed.
    deps.connections.requestStarted(req.socket);
    const url = req.url ?? '';
    const method = req.method ?? 'GET';
    const isHead = method === 'HEAD';
    const reqId = `${deps.instanceId}-${(++seq).toString(36)}`;
    const peerIp = normalizeIp(req.socket.remoteAddress);
    const trusted = deps.trusted.has(peerIp);
    const clientIp = trusted ? deps.trusted.clientOf(peerIp, headerOf(req, 'x-forwarded-for')) : peerIp;
    const head = readRequestHead(req.rawHeaders, subjects, verifiedToken);
    const q = url.indexOf('?');
    // Routed on the normalized path, which is also what the node gets (the query as sent).
    const target = routeOf(q < 0 ? url : url.slice(0, q));
    const { path, route } = target;
    const forwardUrl = q < 0 ? path : path + url.slice(q);

    const record: RoutingRecord = {
      event: 'request',
      reqId,
      client: head.user === undefined ? { ip: clientIp } : { ip: clientIp, user: head.user, userFrom: head.userFrom },
      method,
      path: loggablePath(url),
      route,
      node: null,
      reason: null,
      affinity: 'none',
      status: 0,
      durationMs: 0,
      attempts: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    inflight++;
    let cut: { status?: number; error: RoutingError } | undefined;
    let unwatch: (() => void) | undefined;
    let counted = false;
    const done = (): void => {
      unwatch?.();
      if (counted) deps.limits.endRequest(clientIp);
      if (cut !== undefined) {
        // Cut for a too slow body: that, not the client leaving, is what happened.
        if (cut.status !== undefined) record.status = cut.status;
        record.error = cut.error;
      } else if (record.error === 'CLIENT_GONE') {
        // The request ended on a parser error (bad chunk framing): the client got a 400 for it.
        const parseError = deps.connections.parseErrorOf(req.socket);
        if (parseError !== undefined) {
          record.status = 400;
          record.error = `BAD_REQUEST_FRAMING: ${parseError}`;
        }
      }
      record.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      deps.logger.write(record);
      deps.metrics.finished(record);
      deps.connections.requestEnded(req.socket);
      finished();
    };

    // Counted, never refused: a client with many in flight waits behind others for node connections.
    deps.limits.startRequest(clientIp);
    counted = true;

    if (url.charCodeAt(0) !== 47 /* "/" */) {
      record.status = 400;
      record.bytesOut = sendRegistryError(res, isHead, 400, 'UNSUPPORTED', 'harbor-lb takes origin-form request targets only');
      done();
      return;
    }

    const headers = buildRequestHeaders(req.rawHeaders, {
      peerIp,
      clientIp,
      proto: deps.proto,
      trusted,
      requestId: reqId,
      identityEncoding: route === 'token',
    });
    const refused =
      target.refused !== undefined ? pathRefusal(target.refused) : (credentialRefusal(head) ?? unforwardable(method, forwardUrl, req.rawHeaders, headers));
    if (refused !== undefined) {
      // The client's problem, found before any node is involved: nothing is charged to a node.
      record.status = refused.status;
      record.error = refused.error;
      record.bytesOut = sendRegistryError(res, isHead, refused.status, refused.code, `harbor-lb cannot forward this request: ${refused.reason}`);
      done();
      return;
    }
    const body = head.hasBody ? new RequestBody(req) : undefined;
    const socket = req.socket;
    unwatch = deps.rateWatch.watch({
      bytes: () => socket.bytesRead + socket.bytesWritten,
      waitingOnClient: () => (body?.waiting ?? false) || res.writableNeedDrain,
      cut: () => {
        deps.connections.count('MIN_BODY_RATE');
        if (!res.headersSent) {
          cut = { status: 408, error: 'CLIENT_TOO_SLOW: request body' };
          record.bytesOut = sendRegistryError(res, isHead, 408, 'TIMEOUT', `the request body arrived slower than ${deps.minBodyRate} bytes/s (limits.minBodyRate)`, null, ['connection', 'close']);
          body?.abort(new ProxyError('CLIENT_TOO_SLOW', 408, 'request body too slow'));
          // The rest of a trickled body is not waited for.
          res.once('finish', () => socket.destroySoon());
        } else {
          // The status is what the node answered (set when the exchange ends): only the error is ours.
          cut = { error: 'CLIENT_TOO_SLOW: response body' };
          res.destroy();
        }
      },
    });
    const ready = body && head.contentLength !== undefined && head.contentLength <= REPLAYABLE_BODY ? body.preload() : Promise.resolve();
    void ready.then(() => run(deps, { req, res, method, url: forwardUrl, path, headers, body, record, route, clientIp, user: head.user, userFrom: head.userFrom, bearer: head.bearer, session: head.session === 'ambiguous' ? undefined : head.session, ranged: req.headers.range !== undefined })).then(done, (err: unknown) => {
      if (body?.clientFailed) {
        // The client hung up while its small body was being read: nothing to answer.
        record.error = 'CLIENT_GONE';
        record.bytesIn = body.bytes;
        // An answer harbor-lb already wrote (408 for a trickled body) is left to flush.
        if (!res.writableEnded) res.destroy();
      } else {
        record.error = `INTERNAL_ERROR: ${(err as Error).message}`;
        if (!res.headersSent) record.bytesOut = sendRegistryError(res, isHead, 500, 'UNAVAILABLE', 'internal proxy error');
        else res.destroy();
      }
      done();
    });
  }

  return {
    handle,
    inflight: () => inflight,
    idle: () => (inflight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  url: string;
  path: string;
  headers: string[];
  body: RequestBody | undefined;
  record: RoutingRecord;
  route: Route;
  clientIp: string;
  user: string | undefined;
  userFrom: UserSource | undefined;
  /** The bearer token exactly as the node reads it (credentials.ts), when there is one. */
  bearer: string | undefined;
  session: SessionCookie | undefined;
  /** The client asked for a byte range: a node's cut of that answer is the client's choice of range. */
  ranged: boolean;
}

const REGISTRY_401 = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}';

/** Bodies up to this size (with a declared length) are read whole so they can be replayed. */
export const REPLAYABLE_BODY = 64 * 1024;

/** Attempts on one node after another while it is safe; ends with the client answered one way or another. */
async function run(deps: ProxyDeps, ex: Exchange): Promise<void> {
  const { record, res, method, body } = ex;
  // Which answers a shared failure is judged on: the /v2/ ping needs no storage, pulls do.
  const failureClass = ex.route === 'v2' && (ex.path === '/v2/' || ex.path === '/v2') ? 'v2-base' : ex.route;
  const guard = deps.guard;
  const inspectToken = guard !== undefined && ex.route === 'token' && method === 'GET' && body === undefined;
  const bearer = guard !== undefined && (ex.route === 'v2' || ex.route === 'upload') ? ex.bearer : undefined;
  const choice = await deps.pins.begin({ route: ex.route, method, path: ex.path, clientIp: ex.clientIp, user: ex.user, userFrom: ex.userFrom, session: ex.session });
  record.affinity = choice.kind;
  const tried = new Set<ClusterNode>(choice.avoid);
  let outcome: ForwardOutcome | undefined;
  let reason: RouteReason = choice.first;
  let reached = false;
  let queueTimedOut = false;
  // An upload continues on its own node or not at all (another node may not know it), and a
  // pinned session stays with its node: they wait for its connections, never go elsewhere for them.
  const mayMove = !choice.mustStay;
  deps.budget.active++;
  try {
    for (let attempt = 1; attempt <= deps.maxAttempts; attempt++) {
      // The client may leave during the pin lookup or between attempts: then no node is bothered.
      if (res.destroyed) {
        outcome = { phase: 'client-gone', status: 0, bytesOut: 0, clientStalled: false };
        break;
      }
      const chosen = choice.next(deps.nodes.available(), tried);
      if (chosen === undefined) break;
      const streamed = body !== undefined && body.buffered === undefined;
      const admitted = await admit(deps, ex, chosen, streamed ? 'upload' : 'fast', mayMove, tried);
      if (admitted.kind === 'gone') continue; // its node left the set while it waited: another, as a new attempt
      if (admitted.kind !== 'slot') {
        // No connection came free within limits.queueTimeout, or the client left meanwhile.
        if (admitted.kind === 'left' || res.destroyed) outcome = { phase: 'client-gone', status: 0, bytesOut: 0, clientStalled: false };
        else queueTimedOut = true;
        break;
      }
      const { node, slot } = admitted;
      tried.add(node);
      const anotherNode = attempt < deps.maxAttempts && deps.nodes.available().some((n) => !tried.has(n));
      // A 5xx every node answers is passed on at once: retrying it elsewhere only adds load.
      const canRetryAfter = anotherNode && deps.budget.canRetry() && deps.outliers.clusterFailure === undefined;
      // An earlier attempt was sent: this one is a retry (record.node is still that attempt's node).
      if (outcome !== undefined) deps.metrics.retry(ex.route, record.node!, reason, outcome.phase);
      record.attempts = attempt;
      record.node = node.name;
      record.reason = reason;
      const endTraffic = node.traffic.begin();
      let nodeFailed = false;
      if (attempt > 1) deps.budget.retrying++;
      let tokenRejected = false;
      // A registry refuses a token before it acts, so a request it refused can go elsewhere
      // when its body (if any) can be sent again.
      const replayable = bearer !== undefined && (body === undefined || body.buffered !== undefined) && anotherNode;
      const sentAt = performance.now();
      // A body-less read that has no answer yet may go to another node if this one is taken out.
      let abortAttempt: ((err: Error) => void) | undefined;
      const answered = deps.answers.begin(node, isBodylessRead(method, body) ? () => abortAttempt?.(new ProxyError('NODE_TAKEN_OUT', 502, 'the node was taken out')) : undefined);
      try {
        outcome = await forward({
          node,
          method,
          path: ex.url,
          headers: ex.headers,
          body,
          req: ex.req,
          res,
          rewriter: deps.rewriter,
          headersTimeout: body === undefined ? deps.headersTimeout : deps.uploadHeadersTimeout,
          // Only drop a 502/503/504 when there is somewhere else to go and budget to go there.
          retryOnGatewayError: isBodylessRead(method, body) && canRetryAfter,
          hold: inspectToken ? guard!.holdFor(node) : undefined,
          onSent: (abort) => (abortAttempt = abort),
          onHead: (status, h) => {
            answered();
            if (bearer !== undefined && isTokenRejection(status, h)) tokenRejected = true;
            if (status === 403 && ex.route === 'ui' && !isBodylessRead(method, undefined) && ex.session?.kind === 'csrf') deps.onCsrfRefusal?.();
            choice.observe(node, status, h);
          },
          holdBack: replayable ? isTokenRejection : undefined,
        });
        nodeFailed = reportAttempt(deps, node, outcome, failureClass, ex.ranged);
      } finally {
        answered();
        endTraffic(nodeFailed);
        slot.release();
        if (attempt > 1) deps.budget.retrying--;
      }
      deps.metrics.attempt(ex.route, node.name, sentAt, outcome.headAt);
      if (outcome.phase !== 'not-sent') reached = true;
      if (outcome.phase === 'buffered') {
        // A token the client must never see if it is bad: try another node while one is left.
        const { verdict, subject } = await guard!.judgeTokenResponse(node, outcome.body!, 'traffic');
        if (verdict === 'bad' && anotherNode) {
          reason = 'reissued';
          continue;
        }
        // A good token issued to the Basic user is the node vouching for that login.
        if (verdict === 'good') choice.answered(node, outcome.status, choice.basicUser !== undefined && subject === choice.basicUser);
        break;
      }
      if (outcome.phase === 'held-back') {
        if ((await guard!.judgeRejection(node, bearer, 'traffic')) && anotherNode) {
          reason = 'retried';
          continue;
        }
        break;
      }
      if (tokenRejected) void guard!.judgeRejection(node, bearer, 'traffic');
      // Without token checks, the token service answering a Basic login 200 is what vouches for it.
      if (outcome.phase === 'complete') choice.answered(node, outcome.status, guard === undefined && ex.route === 'token' && outcome.status === 200);
      if (outcome.phase === 'complete' || outcome.phase === 'client-gone' || outcome.phase === 'cut' || outcome.phase === 'unsendable') break;
      if (!mayRetry(outcome, method, body) || (needsBudget(outcome) && !deps.budget.canRetry())) break;
      reason = outcome.phase === 'not-sent' ? 'failover' : 'retried';
    }
  } finally {
    deps.budget.active--;
  }

  // Whatever the node did not read (it answered early, or failed) is drained, never left to stall the client.
  body?.release();
  record.bytesIn = body?.bytes ?? 0;
  if (queueTimedOut && (outcome === undefined || outcome.phase === 'not-sent')) {
    record.status = 503;
    record.error = 'QUEUE_TIMEOUT';
    deps.connections.count('QUEUE_TIMEOUT');
    record.bytesOut = sendRegistryError(res, method === 'HEAD', 503, 'UNAVAILABLE', "every connection of the node was busy for limits.queueTimeout; try again", null, ['retry-after', '1']);
    return;
  }
  if (outcome === undefined) {
    record.status = 503;
    record.error = 'NO_NODE_AVAILABLE';
    record.bytesOut = sendRegistryError(res, method === 'HEAD', 503, 'UNAVAILABLE', 'no Harbor node is available', null, [
      'retry-after',
      '5',
    ]);
    return;
  }
  record.bytesOut = outcome.bytesOut;
  record.status = outcome.status;
  if (outcome.phase === 'not-sent' && !reached) {
    // Every node tried refused the connection: no node answers at all.
    record.status = 503;
    const failure = nodeFailure(outcome.error);
    record.error = `NO_NODE_AVAILABLE: ${nodeFailureLabel(outcome.error)}`;
    record.bytesOut = sendRegistryError(res, method === 'HEAD', 503, 'UNAVAILABLE', 'no Harbor node is available', { reason: failure.message }, ['retry-after', '5']);
    return;
  }
  switch (outcome.phase) {
    case 'complete':
      return;
    case 'buffered':
      record.bytesOut = writeHeld(res, outcome.status, outcome.headers!, outcome.body!);
      return;
    case 'held-back':
      record.bytesOut = writeHeld(res, 401, outcome.headers!, method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(REGISTRY_401));
      return;
    case 'client-gone':
      record.error = 'CLIENT_GONE';
      return;
    case 'cut':
      // A node that gave up on a client not reading (nginx's send_timeout): the client's doing.
      record.error = outcome.clientStalled ? 'CLIENT_TOO_SLOW: response body (the node gave up)' : `NODE_CUT_RESPONSE: ${nodeFailureLabel(outcome.error)}`;
      return;
    case 'unsendable': {
      // undici refused the request as the client shaped it (a shape request-check does not know yet).
      const code = (outcome.error as { code?: string } | undefined)?.code;
      const clients = code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
      record.status = clients ? 400 : 500;
      record.error = `REQUEST_NOT_FORWARDABLE: ${code ?? 'UNKNOWN'}`;
      record.bytesOut = clients
        ? sendRegistryError(res, method === 'HEAD', 400, 'BAD_REQUEST', `harbor-lb cannot forward this request: ${outcome.error?.message ?? 'invalid request'}`)
        : sendRegistryError(res, method === 'HEAD', 500, 'UNAVAILABLE', 'internal proxy error');
      return;
    }
    case 'gateway-error':
      // Dropped for a retry that did not happen (budget spent meanwhile): answer in the node's stead.
      record.error = `NODE_ANSWERED_${outcome.status as 502 | 503 | 504}`;
      record.bytesOut = sendRegistryError(res, method === 'HEAD', outcome.status, 'UNAVAILABLE', `the node answered ${outcome.status}`, {
        node: record.node,
      });
      return;
    default: {
      if (outcome.clientStalled) {
        // The node stopped waiting for a body the client had stopped sending (nginx's client_body_timeout).
        record.status = 408;
        record.error = 'CLIENT_TOO_SLOW: request body (the node gave up)';
        record.bytesOut = sendRegistryError(res, method === 'HEAD', 408, 'TIMEOUT', 'the node stopped waiting for the request body: the client paused sending it', null, ['connection', 'close']);
        return;
      }
      const failure = nodeFailure(outcome.error);
      record.error = nodeFailureLabel(outcome.error);
      record.status = failure.status;
      record.bytesOut = sendRegistryError(res, method === 'HEAD', failure.status, 'UNAVAILABLE', failure.message, {
        node: record.node,
      });
    }
  }
}

/**
 * A connection slot for the attempt: on the chosen node when it has one for this client now;
 * else, when the request may move, on another available node that has one now; else the wait in
 * the fair queues of the chosen node, and of the others too when the request may move (the first
 * slot any frees is taken).
 */
async function admit(deps: ProxyDeps, ex: Exchange, chosen: ClusterNode, pool: PoolKind, mayMove: boolean, tried: ReadonlySet<ClusterNode>): Promise<Admitted> {
  const now = deps.admission.tryTake(chosen, pool, ex.clientIp);
  if (now !== undefined) return { kind: 'slot', node: chosen, slot: now };
  const others = mayMove ? deps.nodes.available().filter((n) => n !== chosen && !tried.has(n)) : [];
  others.sort((a, b) => a.traffic.inflight / a.weight - b.traffic.inflight / b.weight);
  for (const node of others) {
    const slot = deps.admission.tryTake(node, pool, ex.clientIp);
    if (slot !== undefined) return { kind: 'slot', node, slot };
  }
  let stop: (() => void) | undefined;
  const onClose = () => stop?.();
  ex.res.once('close', onClose);
  const admitted = await deps.admission.wait([chosen, ...others], pool, ex.clientIp, (s) => (stop = s));
  ex.res.off('close', onClose);
  return admitted;
}

/** A response held back for inspection, written now; its own Content-Length is replaced by the real one. */
function writeHeld(res: ServerResponse, status: number, headers: string[], body: Buffer): number {
  if (res.headersSent || res.destroyed) return 0;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== 'content-length') out.push(headers[i]!, headers[i + 1]!);
  }
  out.push('content-length', String(body.length));
  res.writeHead(status, out);
  res.end(body);
  return body.length;
}


/**
 * Passive health: what one attempt says about its node, told to outlier detection. A client's
 * doing says nothing and is not reported. Returns whether the node failed the attempt.
 */
function reportAttempt(deps: ProxyDeps, node: ClusterNode, o: ForwardOutcome, route: string, ranged: boolean): boolean {
  const verdict = attemptVerdict(o, route, ranged);
  if (verdict === undefined) return false;
  deps.outliers.record(node, verdict);
  return verdict.kind !== 'answered';
}

/**
 * What an attempt says about its node, or undefined when it says nothing: the client hung up,
 * undici refused what the client shaped, harbor-lb was waiting on the client when the node gave
 * up (a stalled upload or reader: nginx's client_body_timeout and send_timeout), or the node
 * cut an answer the client chose (a 4xx such as 416 for a Range past the end, or any ranged read).
 */
export function attemptVerdict(o: ForwardOutcome, route: string, ranged: boolean): AttemptVerdict | undefined {
  switch (o.phase) {
    case 'client-gone':
    case 'unsendable':
      return undefined;
    case 'buffered':
    case 'held-back':
      return { kind: 'answered', route };
    case 'complete':
    case 'gateway-error':
      return o.status >= 502 && o.status <= 504 ? { kind: 'gateway', status: o.status, route } : { kind: 'answered', route };
    case 'not-sent':
      return { kind: 'unreachable', code: nodeFailure(o.error).code };
    default:
      if (o.clientStalled) return undefined;
      if (o.phase === 'cut' && (ranged || (o.status >= 400 && o.status < 500))) return undefined;
      return { kind: 'failed', code: nodeFailureLabel(o.error) };
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
