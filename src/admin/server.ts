import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { NODE_NAME } from '../config/schema.js';
import type { Logger } from '../log/loggers.js';
import type { NodeHealth } from '../health/node-health.js';
import type { ClockSkew } from '../health/clock-skew.js';
import type { OutlierDetector } from '../health/outlier-detector.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { ConfigStatus, ReloadResult } from '../config/live-config.js';
import type { MetricsExposition } from './metrics.js';
import { hostAllowed } from './admin-host.js';
import { buildStatus } from './status.js';
import type { CacheStats } from '../coalesce/blob-cache.js';
import type { TrafficHistoryDocument } from './traffic-history.js';
import type { WorkerStatus } from '../workers/worker-pool.js';
import { pageHeaders, STATUS_PAGE_ASSETS } from './status-page.js';

export interface AdminDeps {
  nodes: NodeSet;
  health: NodeHealth;
  outliers: OutlierDetector;
  skew?: ClockSkew;
  sticky: () => { store: string; connected: boolean; entries?: number };
  /** When set, actions (drain, undrain) need `Authorization: Bearer <token>`. */
  token: string | undefined;
  /** admin.allowedHosts: names (lower case) answered besides IP literals and localhost. */
  allowedHosts?: readonly string[];
  logger: Logger;
  /** Requests waiting for a node's connections now. */
  queued?: (node: ClusterNode) => number;
  /** What GET /metrics answers. */
  metrics: MetricsExposition;
  /** POST /-/reload: re-reads and applies the config file. */
  reload?: () => ReloadResult;
  configStatus?: () => ConfigStatus;
  /** GET /-/history: the status page's charts. */
  history?: () => TrafficHistoryDocument;
  /** The processes serving traffic: brought up to date before /-/status answers, then listed in it. */
  workers?: { refresh(): Promise<void>; status(): WorkerStatus[]; serving(): boolean };
  /** The blob cache's size (cache.dir), when there is one. */
  cache?: () => CacheStats | undefined;
}

const NODE_ACTION = /^\/-\/nodes\/([^/]*)\/(drain|undrain)$/;
/** How much of a bad request target goes into a log line. */
const LOGGED_PATH_MAX = 256;

/** A request the admin API refuses before acting on it: its status and what the JSON answer says. */
class AdminRequestError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message);
    this.name = 'AdminRequestError';
  }
}

/**
 * The operators' listener, never the traffic port: liveness, readiness, status and node actions.
 * Whatever a request looks like, it gets a JSON answer (400/404 for a bad one, 500 for a bug of
 * ours) and nothing escapes the request listener: an exception there would end the process.
 */
export function createAdminServer(deps: AdminDeps): http.Server {
  const api = new AdminApi(deps);
  // Sockets with a response under way: a parse error on them must not write into that response.
  const answering = new WeakSet<Duplex>();
  const server = http.createServer((req, res) => {
    answering.add(req.socket);
    res.once('close', () => answering.delete(req.socket));
    try {
      api.route(req, res);
    } catch (err) {
      api.answerFailure(req, res, err);
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => unparsable(err, socket, answering.has(socket)));
  return server;
}

/**
 * Requests node:http cannot even parse (a NUL in the path, a head over the size limit): a JSON
 * answer like every other refusal, unless a response is already being written on the socket.
 */
function unparsable(err: NodeJS.ErrnoException, socket: Duplex, answering: boolean): void {
  if (err.code !== 'ECONNRESET' && socket.writable && !answering) {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({ error: status === 431 ? 'request head too large' : status === 408 ? 'request timeout' : 'malformed request' });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  // After what was written has gone out; a bare destroy() could discard the answer.
  if (socket instanceof net.Socket) socket.destroySoon();
  else socket.destroy();
}

/** The admin API's routes: who may ask (host rule, token, same origin), and what each path answers. */
class AdminApi {
  readonly #deps: AdminDeps;
  readonly #expected: Buffer | undefined;
  readonly #allowedHosts: Set<string>;
  readonly #hostRefused: string;

  constructor(deps: AdminDeps) {
    this.#deps = deps;
    this.#expected = deps.token === undefined ? undefined : digest(deps.token);
    this.#allowedHosts = new Set(deps.allowedHosts ?? []);
    this.#hostRefused =
      'this admin listener answers only to an IP address, localhost or a name in admin.allowedHosts as host (another name could be one re-pointed at it: DNS rebinding): ' +
      (this.#expected === undefined ? 'reach it by its IP address, or add the name to admin.allowedHosts' : 'reach it by its IP address, add the name to admin.allowedHosts, or send Authorization: Bearer <admin.token>');
  }

  route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    // Origin-form only: "*", absolute-form and anything else is not a path of ours.
    if (!path.startsWith('/')) throw new AdminRequestError(400, 'malformed request target: expected a path starting with "/"');
    // A page cannot send the token cross-site, so a request with it may name any host. Without
    // it, only names that cannot be re-pointed (DNS rebinding) are answered, reads included: the
    // status shows node addresses, flags and reload problems.
    const withToken = this.#expected !== undefined && authorized(req.headers.authorization, this.#expected);
    if (!withToken && !hostAllowed(req.headers.host, this.#allowedHosts)) return json(res, 403, { error: this.#hostRefused });
    const action = NODE_ACTION.exec(path);
    if (path === '/-/reload' || action) {
      if (req.method !== 'POST') return json(res, 405, { error: 'use POST' });
      if (crossOrigin(req)) return crossOriginRefused(res);
      if (this.#expected && !withToken) return unauthorized(res);
      return action ? this.#nodeAction(req, res, action) : this.#reload(req, res);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    this.#read(req, res, path);
  }

  #reload(req: http.IncomingMessage, res: http.ServerResponse): void {
    const deps = this.#deps;
    if (deps.reload === undefined) throw new AdminRequestError(404, 'this harbor-lb cannot reload');
    deps.logger.info({ event: 'admin_action', action: 'reload', peer: req.socket.remoteAddress }, 'config reload asked for through the admin API');
    const result = deps.reload();
    // 422: the new file was refused; the old config serves on.
    json(res, result.ok ? 200 : 422, result);
  }

  #nodeAction(req: http.IncomingMessage, res: http.ServerResponse, action: RegExpExecArray): void {
    const deps = this.#deps;
    const node = deps.nodes.get(nodeName(action[1]!));
    if (!node) throw new AdminRequestError(404, `no node named ${action[1]}`);
    deps.nodes.setDrained(node, action[2] === 'drain');
    deps.logger.info({ event: 'admin_action', action: action[2], node: node.name, peer: req.socket.remoteAddress }, `node ${node.name}: ${action[2]}`);
    json(res, 200, { node: node.name, state: node.state });
  }

  #read(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    const deps = this.#deps;
    const asset = STATUS_PAGE_ASSETS.get(path);
    if (asset) {
      res.writeHead(200, pageHeaders(asset));
      return void res.end(asset.body);
    }
    switch (path) {
      case '/-/healthz':
        return json(res, 200, { status: 'ok' });
      case '/-/ready': {
        const ready = deps.nodes.ready() && (deps.workers?.serving() ?? true);
        return json(res, ready ? 200 : 503, { ready });
      }
      case '/-/status': {
        const workers = deps.workers;
        const status = () => buildStatus(deps.nodes, deps.health, deps.outliers, deps.sticky(), deps.skew, deps.configStatus?.(), deps.queued);
        if (workers === undefined) return json(res, 200, { ...status(), ...cacheOf(deps) });
        // With request workers, their counters are asked for first: the answer adds up what they have done.
        return void workers.refresh().then(
          () => json(res, 200, { ...status(), workers: workers.status(), ...cacheOf(deps) }),
          (err: unknown) => this.answerFailure(req, res, err),
        );
      }
      case '/-/history':
        if (deps.history === undefined) throw new AdminRequestError(404, 'not found');
        return json(res, 200, deps.history());
      case '/metrics':
        // Collection is asynchronous in prom-client; a failure is answered like a throw here.
        return void deps.metrics.render().then(
          (text) => {
            res.writeHead(200, { 'content-type': deps.metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
            res.end(text);
          },
          (err: unknown) => this.answerFailure(req, res, err),
        );
      default:
        throw new AdminRequestError(404, 'not found');
    }
  }

  #failed(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    if (err instanceof AdminRequestError) {
      if (!res.headersSent) return json(res, err.status, { error: err.message });
    } else {
      this.#deps.logger.error(
        { event: 'admin_error', method: req.method, path: (req.url ?? '').slice(0, LOGGED_PATH_MAX), err },
        `admin API: ${req.method} failed: ${(err as Error).message}`,
      );
      if (!res.headersSent) return json(res, 500, { error: 'internal error; see the harbor-lb log (event admin_error)' });
    }
    res.destroy();
  }

  answerFailure(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    try {
      this.#failed(req, res, err);
    } catch {
      // Answering failed too (socket gone): drop the connection, never the process.
      res.destroy();
    }
  }
}

/** The node name in an action path, percent-decoded and checked against what a node name may be. */
function nodeName(encoded: string): string {
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    throw new AdminRequestError(400, 'bad percent-encoding in the node name');
  }
  if (!NODE_NAME.test(name)) throw new AdminRequestError(400, 'not a node name: letters, digits, ".", "_" or "-", at most 63');
  return name;
}

/**
 * Whether a browser sent this from a page of another origin: its Origin (or, failing that,
 * Sec-Fetch-Site) does not name this listener. Clients that are not browsers send neither.
 */
function crossOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    try {
      return new URL(origin).host !== req.headers.host?.toLowerCase();
    } catch {
      return true; // "null" (a sandboxed or file page) or garbage
    }
  }
  const site = req.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares digests in constant time, so the token's length and prefix do not leak through timing. */
function authorized(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined || !/^bearer /i.test(header)) return false;
  return timingSafeEqual(digest(header.slice(7).trim()), expected);
}

function unauthorized(res: http.ServerResponse): void {
  json(res, 401, { error: 'admin token required (Authorization: Bearer <admin.token>)' });
}

/** Actions (drain, undrain, reload) sent by a page of another site through an operator's browser: with no admin token set, nothing else would stop them. */
function crossOriginRefused(res: http.ServerResponse): void {
  json(res, 403, { error: 'cross-origin request refused: use the status page served here, or a client that sends no Origin' });
}

function json(res: http.ServerResponse, status: number, doc: unknown): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** /-/status's `cache` member: there only when cache.dir is set. */
function cacheOf(deps: AdminDeps): { cache?: CacheStats } {
  const cache = deps.cache?.();
  return cache === undefined ? {} : { cache };
}
