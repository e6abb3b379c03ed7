import http from 'node:http';
import { createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { challenge, RegistryAuth } from './registry-auth.js';
import { requestOrigin } from './request-origin.js';
import { RegistryApi } from './registry/registry-api.js';
import { RegistryStorage } from './registry/storage.js';
import { TokenService } from './token-service.js';

export const HARBOR_COMPONENTS = ['core', 'database', 'jobservice', 'portal', 'redis', 'registry', 'registryctl'] as const;

export interface SimulatedHarborNodeOptions {
  name: string;
  signingKey: KeyObject;
  issuer?: string;
  service?: string;
  users?: Readonly<Record<string, string>>;
  /** A registry (e.g. the real docker-registry) that `/v2/` is forwarded to, as Harbor core does. */
  registryUrl?: string;
  /**
   * Without registryUrl: the keys the node's own registry trusts for tokens (its root.crt).
   * Defaults to the signing key; a different one makes the seed's misconfigured node.
   */
  registryTrusts?: KeyObject[];
  /**
   * The token realm the registry advertises: 'node' (default) names the node's own URL, as a
   * fixed-realm registry on a node configured with its own address does; 'request' builds it from
   * the request's Host like Harbor 2.x; any other string is used as it is.
   */
  realm?: string;
  /** The token service issues tokens for any `service` a client names, as its `aud` (see TokenService). */
  tokenAnyService?: boolean;
  /** Without registryUrl: run the embedded registry on this storage folder (shared by nodes). */
  storage?: string;
  /** The embedded registry's http.secret. */
  httpSecret?: string;
  address?: string;
  port?: number;
  /** How far this node's clock is off (ms, + ahead): its tokens, its registry's checks and its Date header. */
  clockOffsetMs?: number;
  /**
   * Harbor core's CSRF_KEY (gorilla/csrf). Nodes installed separately each get their own; then a
   * CSRF cookie minted on one node fails on another with 403 "CSRF token invalid" (harbor#21060).
   */
  csrfKey?: string;
}

/**
 * A stand-in for one Harbor node: token service, health JSON, ping and a `/v2/` that fronts a
 * registry. Used by tests and the demo; the e2e suite puts the real registry behind it.
 */
export class SimulatedHarborNode {
  readonly tokens: TokenService;
  /** Component -> "healthy" | "unhealthy"; tests flip these to make the node sick. */
  readonly components = new Map<string, string>(HARBOR_COMPONENTS.map((c) => [c, 'healthy']));
  readonly #server: http.Server;
  readonly #registry: Pool | undefined;
  readonly #auth: RegistryAuth;
  readonly #api: RegistryApi | undefined;
  #port = 0;

  constructor(private readonly opts: SimulatedHarborNodeOptions) {
    this.tokens = new TokenService({
      signingKey: opts.signingKey,
      issuer: opts.issuer ?? 'harbor-token-issuer',
      service: opts.service ?? 'harbor-registry',
      users: opts.users ?? { admin: 'Harbor12345' },
      now: () => Date.now() + (opts.clockOffsetMs ?? 0),
      anyService: opts.tokenAnyService,
    });
    this.#auth = new RegistryAuth(
      opts.registryTrusts ?? [opts.signingKey],
      opts.issuer ?? 'harbor-token-issuer',
      opts.service ?? 'harbor-registry',
      () => Date.now() + (opts.clockOffsetMs ?? 0),
    );
    this.#api = opts.storage
      ? new RegistryApi({
          storage: new RegistryStorage(opts.storage),
          auth: this.#auth,
          httpSecret: opts.httpSecret ?? 'harbor-lb-demo-http-secret',
          service: opts.service ?? 'harbor-registry',
          realm: (req) => this.#realm(req),
        })
      : undefined;
    this.#registry = opts.registryUrl ? new Pool(opts.registryUrl, { connections: 32, bodyTimeout: 900_000, headersTimeout: 900_000, allowH2: false }) : undefined;
    // Large heads: a token request with ~190 scopes, then that ~50 KB token as a bearer (the proxy allows 64 KiB too).
    this.#server = http.createServer({ requestTimeout: 0, maxHeaderSize: 65_536 }, (req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        if (!res.headersSent) send(res, 500, { errors: [{ code: 'UNKNOWN', message: err.message, detail: null }] });
        else res.destroy(err);
      });
    });
  }

  get url(): string {
    return `http://${this.opts.address ?? '127.0.0.1'}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.opts.port ?? 0, this.opts.address ?? '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as { port: number }).port;
    return this;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await this.#registry?.destroy();
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://node');
    const path = url.pathname;
    res.setHeader('x-harbor-node', this.opts.name);
    if (this.opts.clockOffsetMs) res.setHeader('date', new Date(Date.now() + this.opts.clockOffsetMs).toUTCString());
    if (!this.#csrf(req, res, path)) return;
    if (path === '/c/login' && req.method === 'POST') return this.#login(req, res);
    if (path === '/service/token') {
      const answer = await this.tokens.issue(url.searchParams, req.headers.authorization);
      return send(res, answer.status, answer.body);
    }
    if (path === '/api/v2.0/health') {
      if (this.#registry) this.components.set('registry', (await this.#registryAnswers()) ? 'healthy' : 'unhealthy');
      const components = [...this.components].map(([name, status]) =>
        status === 'healthy' ? { name, status } : { name, status, error: `${name} is ${status}` },
      );
      const healthy = components.every((c) => c.status === 'healthy');
      // Harbor answers 200 even when unhealthy: the verdict is in the body.
      return send(res, 200, { status: healthy ? 'healthy' : 'unhealthy', components });
    }
    if (path === '/api/v2.0/ping') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('"Pong"');
    }
    if (path === '/v2' || path.startsWith('/v2/')) {
      if (this.#registry) return this.#forward(req, res);
      if (this.#api) return this.#api.handle(req, res, url);
      return this.#v2(req, res, path);
    }
    if (path === '/' || path.startsWith('/harbor')) {
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end(`<!doctype html><title>Harbor</title><p>simulated Harbor node ${this.opts.name}</p>`);
    }
    return send(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found', detail: null }] });
  }

  /**
   * gorilla/csrf as Harbor core runs it: paths under /v2/, /api/, /chartrepo/, /service/ without a
   * session are skipped; everything else gets a token (header) and a cookie signed with the
   * node's key, and an unsafe request must bring both, the cookie one this key made. False when
   * the request was refused (403 "CSRF token invalid").
   */
  #csrf(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
    const cookies = req.headers.cookie ?? '';
    const session = /(?:^|;\s*)sid=/.test(cookies);
    if (!session && /^\/(?:v2|api|chartrepo|service)\//.test(path)) return true;
    const key = this.opts.csrfKey ?? 'harbor-lb-demo-csrf-key-32-chars';
    const sign = (token: string) => createHmac('sha256', key).update(token).digest('base64url');
    const sent = /(?:^|;\s*)_gorilla_csrf=([^;]+)/.exec(cookies)?.[1];
    const [token, mac] = (sent ?? '').split('.');
    const valid = token !== undefined && mac !== undefined && token !== '' && sign(token) === mac;
    const current = valid ? token! : randomBytes(24).toString('base64url');
    if (!valid) res.setHeader('set-cookie', `_gorilla_csrf=${current}.${sign(current)}; Path=/; SameSite=Strict`);
    res.setHeader('x-harbor-csrf-token', current);
    const safe = req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS' || req.method === 'TRACE';
    if (safe || (valid && req.headers['x-harbor-csrf-token'] === current)) return true;
    req.resume();
    send(res, 403, { errors: [{ code: 'FORBIDDEN', message: 'CSRF token invalid', detail: null }] });
    return false;
  }

  /** The UI login (form fields principal, password): a session cookie on success. */
  async #login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const users = this.opts.users ?? { admin: 'Harbor12345' };
    const user = form.get('principal') ?? '';
    if (users[user] === undefined || users[user] !== form.get('password')) return send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid user name or password', detail: null }] });
    res.setHeader('set-cookie', `sid=${randomBytes(16).toString('hex')}; Path=/; HttpOnly`);
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  }

  /** The registry API as far as this node implements it: token checks on /v2/. */
  async #v2(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const auth = await this.#auth.check(req.headers.authorization);
    if (!auth.ok) {
      const service = this.opts.service ?? 'harbor-registry';
      res.setHeader('www-authenticate', challenge(this.#realm(req), service, undefined, auth.reason === 'invalid_token' ? 'invalid_token' : undefined));
      return send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }, req.method === 'HEAD');
    }
    if (path === '/v2/' || path === '/v2') return send(res, 200, {}, req.method === 'HEAD');
    return send(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry', detail: null }] }, req.method === 'HEAD');
  }

  #realm(req: http.IncomingMessage): string {
    const realm = this.opts.realm ?? 'node';
    if (realm === 'node') return `${this.url}/service/token`;
    if (realm !== 'request') return realm;
    return `${requestOrigin(req)}/service/token`;
  }

  /** Harbor core checks its registry's /v2/ (401 with token auth means it is up). */
  async #registryAnswers(): Promise<boolean> {
    try {
      const r = await this.#registry!.request({ path: '/v2/', method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
      await r.body.dump();
      return r.statusCode === 200 || r.statusCode === 401;
    } catch {
      return false;
    }
  }

  /** Harbor core's registry proxy: headers as received (Host, X-Forwarded-*), bodies streamed. */
  async #forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const headers: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const n = req.rawHeaders[i]!.toLowerCase();
      if (n === 'connection' || n === 'keep-alive' || n === 'transfer-encoding' || n === 'expect') continue;
      headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    }
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    let upstream: Awaited<ReturnType<Pool['request']>>;
    try {
      upstream = await this.#registry!.request({
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as 'GET',
        headers,
        body: hasBody || req.headers['transfer-encoding'] ? req : null,
      });
    } catch (err) {
      // What Harbor's nginx answers when core cannot reach the registry.
      if (!res.headersSent) return send(res, 502, { errors: [{ code: 'UNAVAILABLE', message: `registry unreachable: ${(err as Error).message}`, detail: null }] });
      throw err;
    }
    const out: string[] = [];
    for (const [k, v] of Object.entries(upstream.headers)) {
      if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding' || v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) out.push(k, one);
    }
    res.writeHead(upstream.statusCode, out);
    await pipeline(upstream.body, res);
  }
}

function send(res: http.ServerResponse, status: number, doc: unknown, head = false): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}
