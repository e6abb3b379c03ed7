import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { OpKind, PushedImage, SoakContext } from './context.js';
import { Aborted, request, TransportError, type Reply } from './http.js';
import type { SoakRoute } from './stats.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** How long a client waits for a whole answer: docker's own limits are looser; these keep the run bounded. */
const TIMEOUT_MS = { read: 30_000, upload: 60_000 };
/** Waits between retries of one step, as docker backs off (it waits 5 s, 10 s, … for layers; shorter here). */
const BACKOFF_MS = [1000, 2000, 4000, 8000, 8000];
/** Upper bound on operations per user, so a loop ends even if the clock misbehaves. */
const MAX_OPS = 100_000;

/** A failure a client retries: 5xx, 408, 429, or no complete answer. `reason` is its short form, for counting. */
class Retryable extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}
/** A failure no retry fixes (an unexpected 4xx, wrong content): the operation fails at once. */
class Fatal extends Error {}
/** The operation failed for good: a fatal error, or a retryable one still there after the last retry. */
class GaveUp extends Error {
  constructor(
    readonly step: string,
    readonly attempts: number,
    message: string,
  ) {
    super(message);
  }
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Blob {
  digest: string;
  data: Buffer;
}

/**
 * One simulated registry client (docker-like) with its own loopback address, a keep-alive
 * connection pool per harbor-lb instance, and requests sent to the instances in turn, as clients
 * behind DNS round robin or an L4 balancer reach them. Runs push / pull / login / UI operations
 * until the run's deadline, with a think time between them.
 */
export class SimulatedUser {
  readonly name: string;
  readonly #agents: http.Agent[];
  readonly #localAddress: string;
  #turn: number;
  #pushes = 0;
  /** Layers this user pushed, some reused by later pushes (the HEAD finds them). */
  readonly #ownLayers: Blob[] = [];
  readonly #ownImages: PushedImage[] = [];

  constructor(
    readonly id: number,
    private readonly ctx: SoakContext,
    private readonly rand: () => number,
  ) {
    this.name = `u${id}`;
    this.#localAddress = `127.0.0.${10 + id}`;
    this.#agents = ctx.targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 4 }));
    this.#turn = id;
  }

  async run(): Promise<void> {
    for (let i = 0; i < MAX_OPS && Date.now() < this.ctx.deadline && !this.ctx.signal.aborted; i++) {
      const r = this.rand();
      const kind: OpKind = r < 0.3 ? 'push' : r < 0.7 ? 'pull' : r < 0.85 ? 'login' : 'ui';
      await this.#op(kind === 'pull' && this.ctx.images.length === 0 ? 'push' : kind);
      await sleep(100 + Math.floor(this.rand() * 600), this.ctx.signal).catch(() => undefined);
    }
  }

  /** Closes the user's idle keep-alive connections. */
  close(): void {
    for (const a of this.#agents) a.destroy();
  }

  async #op(kind: OpKind): Promise<void> {
    const count = this.ctx.ops.get(kind)!;
    count.started++;
    try {
      if (kind === 'push') await this.#push();
      else if (kind === 'pull') await this.#pull();
      else if (kind === 'login') await this.#login();
      else await this.#ui();
      count.ok++;
    } catch (err) {
      if (err instanceof Aborted) {
        count.abandoned++;
        return;
      }
      count.failed++;
      const e =
        err instanceof GaveUp
          ? { step: err.step, attempts: err.attempts, message: err.message }
          : { step: 'internal', attempts: 1, message: (err as Error).stack ?? String(err) };
      const record = { t: this.ctx.t(), user: this.name, op: kind, ...e };
      this.ctx.unretryable.push(record);
      this.ctx.emit('unretryable', record);
    }
  }

  // ---- operations --------------------------------------------------------------------------

  async #push(): Promise<void> {
    const repo = `library/soak-${this.name}`;
    const tag = `t${++this.#pushes}`;
    const token = await this.#step('push', 'token', () => this.#token(`repository:${repo}:pull,push`));
    const layers: Blob[] = [];
    const nLayers = 1 + Math.floor(this.rand() * 2);
    for (let i = 0; i < nLayers; i++) {
      const reuse = this.#ownLayers.length > 0 && this.rand() < 0.15;
      if (reuse) layers.push(this.#ownLayers[Math.floor(this.rand() * this.#ownLayers.length)]!);
      else {
        // Mostly small layers, now and then a larger one that goes up in two PATCHes.
        const size = this.rand() < 0.1 ? 256 * 1024 + Math.floor(this.rand() * 768 * 1024) : 1024 + Math.floor(this.rand() * 63 * 1024);
        const data = randomBytes(size);
        layers.push({ digest: sha256(data), data });
      }
    }
    const configData = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { soak: `${this.name}-${tag}-${Date.now()}` } }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }),
    );
    const config: Blob = { digest: sha256(configData), data: configData };
    for (const blob of [...layers, config]) {
      const exists = await this.#step('push', 'HEAD blob', async () => {
        const r = await this.#send('v2 pull', 'HEAD', `/v2/${repo}/blobs/${blob.digest}`, { authorization: `Bearer ${token}` });
        this.#expect(r, [200, 404], 'HEAD blob');
        return r.status === 200;
      });
      // Like docker retrying a layer: a failed upload starts again from its POST.
      if (!exists) await this.#step('push', 'blob upload', () => this.#uploadBlob(repo, blob, token));
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.data.length },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.data.length })),
      }),
    );
    const manifestDigest = sha256(manifest);
    await this.#step('push', 'manifest PUT', async () => {
      const r = await this.#send('upload', 'PUT', `/v2/${repo}/manifests/${tag}`, { authorization: `Bearer ${token}`, 'content-type': OCI_MANIFEST }, manifest);
      this.#expect(r, [201], 'manifest PUT');
      if (r.headers['docker-content-digest'] !== manifestDigest) throw new Fatal(`manifest PUT: Docker-Content-Digest ${String(r.headers['docker-content-digest'])}, expected ${manifestDigest}`);
    });
    for (const l of layers) if (!this.#ownLayers.includes(l) && this.#ownLayers.length < 16) this.#ownLayers.push(l);
    const img = { repo, tag, manifestDigest, blobs: [config.digest, ...layers.map((l) => l.digest)] };
    this.#ownImages.push(img);
    if (this.#ownImages.length > 8) this.#ownImages.shift();
    this.ctx.rememberImage(img);
  }

  async #uploadBlob(repo: string, blob: Blob, token: string): Promise<void> {
    const auth = { authorization: `Bearer ${token}` };
    const started = await this.#send('upload', 'POST', `/v2/${repo}/blobs/uploads/`, auth);
    this.#expect(started, [202], 'upload POST');
    let path = this.#location(started, 'upload POST');
    const chunks = blob.data.length > 256 * 1024 ? [blob.data.subarray(0, blob.data.length >> 1), blob.data.subarray(blob.data.length >> 1)] : [blob.data];
    for (const chunk of chunks) {
      const patched = await this.#send('upload', 'PATCH', path, { ...auth, 'content-type': 'application/octet-stream', 'content-length': chunk.length }, chunk);
      this.#expect(patched, [202], 'upload PATCH');
      path = this.#location(patched, 'upload PATCH');
    }
    const put = await this.#send('upload', 'PUT', `${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(blob.digest)}`, { ...auth, 'content-length': 0 });
    this.#expect(put, [201], 'upload PUT');
    if (put.headers['docker-content-digest'] !== blob.digest) throw new Fatal(`upload PUT: Docker-Content-Digest ${String(put.headers['docker-content-digest'])}, expected ${blob.digest}`);
  }

  async #pull(): Promise<void> {
    const own = this.#ownImages.length > 0 && this.rand() < 0.5;
    const pool = own ? this.#ownImages : this.ctx.images;
    const img = pool[Math.floor(this.rand() * pool.length)]!;
    const token = await this.#step('pull', 'token', () => this.#token(`repository:${img.repo}:pull`));
    const auth = { authorization: `Bearer ${token}` };
    await this.#step('pull', 'HEAD manifest', async () => {
      const r = await this.#send('v2 pull', 'HEAD', `/v2/${img.repo}/manifests/${img.tag}`, { ...auth, accept: OCI_MANIFEST });
      this.#expect(r, [200], 'HEAD manifest');
      if (r.headers['docker-content-digest'] !== img.manifestDigest) throw new Fatal(`HEAD manifest ${img.repo}:${img.tag}: digest ${String(r.headers['docker-content-digest'])}, pushed ${img.manifestDigest}`);
    });
    await this.#step('pull', 'GET manifest', async () => {
      const r = await this.#send('v2 pull', 'GET', `/v2/${img.repo}/manifests/${img.manifestDigest}`, { ...auth, accept: OCI_MANIFEST });
      this.#expect(r, [200], 'GET manifest');
      if (sha256(r.body) !== img.manifestDigest) throw new Fatal(`GET manifest ${img.manifestDigest}: body hashes to ${sha256(r.body)} (${r.body.length} bytes)`);
    });
    for (const digest of img.blobs) {
      await this.#step('pull', 'GET blob', async () => {
        const r = await this.#send('v2 pull', 'GET', `/v2/${img.repo}/blobs/${digest}`, auth);
        this.#expect(r, [200], 'GET blob');
        if (sha256(r.body) !== digest) throw new Fatal(`GET blob ${digest}: body hashes to ${sha256(r.body)} (${r.body.length} bytes)`);
      });
    }
  }

  /** docker login: the challenge (its realm must name the proxy), a token without scope, then /v2/ with it. */
  async #login(): Promise<void> {
    await this.#step('login', 'challenge', async () => {
      const r = await this.#send('v2 pull', 'GET', '/v2/', {});
      this.#expect(r, [401], 'GET /v2/ without token');
      const challenge = String(r.headers['www-authenticate'] ?? '');
      const realm = /realm="([^"]*)"/.exec(challenge)?.[1];
      if (realm !== `${this.ctx.publicUrl}/service/token`) throw new Fatal(`GET /v2/: realm ${realm ?? '(none)'} does not name the proxy (${challenge})`);
    });
    const token = await this.#step('login', 'token', () => this.#token(undefined));
    await this.#step('login', 'GET /v2/', async () => {
      const r = await this.#send('v2 pull', 'GET', '/v2/', { authorization: `Bearer ${token}` });
      this.#expect(r, [200], 'GET /v2/ with token');
    });
  }

  /** A person on the web UI: the portal, the health and ping APIs it polls. */
  async #ui(): Promise<void> {
    for (const path of ['/', '/api/v2.0/health', '/api/v2.0/ping']) {
      await this.#step('ui', `GET ${path}`, async () => {
        const r = await this.#send('ui', 'GET', path, {});
        this.#expect(r, [200], `GET ${path}`);
        if (path === '/api/v2.0/health') {
          const doc = parseJson(r.body) as { status?: unknown } | undefined;
          if (typeof doc?.status !== 'string') throw new Fatal(`GET ${path}: not Harbor's health JSON: ${r.body.subarray(0, 200).toString()}`);
        }
      });
    }
  }

  async #token(scope: string | undefined): Promise<string> {
    const q = new URLSearchParams({ account: 'admin', service: 'harbor-registry' });
    if (scope !== undefined) q.set('scope', scope);
    const r = await this.#send('token', 'GET', `/service/token?${q.toString()}`, { authorization: BASIC });
    this.#expect(r, [200], 'token');
    const token = (parseJson(r.body) as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || token.length === 0) throw new Fatal(`token: 200 without a token: ${r.body.subarray(0, 200).toString()}`);
    return token;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  /** Runs one step, retrying a retryable failure up to ctx.maxRetries times with backoff. */
  async #step<T>(op: OpKind, step: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Aborted) throw err;
        if (err instanceof Fatal) throw new GaveUp(step, attempt + 1, err.message);
        if (!(err instanceof Retryable)) throw err;
        if (attempt >= this.ctx.maxRetries) throw new GaveUp(step, attempt + 1, `${err.message} (after ${attempt} retries)`);
        this.ctx.retries.add(`${op}/${step}: ${err.reason}`);
        if (this.ctx.retryTimes.length < 10_000) this.ctx.retryTimes.push(this.ctx.t());
        this.ctx.emit('retry', { user: this.name, op, step, attempt: attempt + 1, message: err.message });
        await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!, this.ctx.signal);
      }
    }
  }

  async #send(route: SoakRoute, method: string, path: string, headers: http.OutgoingHttpHeaders, body?: Buffer): Promise<Reply & { via: string }> {
    const i = this.#turn++ % this.ctx.targets.length;
    const target = this.ctx.targets[i]!;
    try {
      const r = await request({
        port: target.port,
        method,
        path,
        headers: { host: this.ctx.hostHeader, 'user-agent': 'harbor-lb-soak (docker-like)', ...headers },
        body,
        agent: this.#agents[i]!,
        localAddress: this.#localAddress,
        timeoutMs: route === 'upload' ? TIMEOUT_MS.upload : TIMEOUT_MS.read,
        signal: this.ctx.signal,
      });
      this.ctx.latency.record(route, r.ms);
      this.ctx.requests.add(`${route} ${r.status}`);
      return { ...r, via: `${target.name}/${String(r.headers['x-harbor-node'] ?? '-')}` };
    } catch (err) {
      if (err instanceof TransportError) {
        this.ctx.transportErrors.add(`${route} ${err.code}`);
        throw new Retryable(`${method} ${shortPath(path)}: ${err.message} via ${target.name}`, `${method} ${err.code}`);
      }
      throw err;
    }
  }

  #expect(r: Reply & { via: string }, ok: number[], what: string): void {
    if (ok.includes(r.status)) return;
    const code = (parseJson(r.body) as { errors?: Array<{ code?: string; message?: string }> } | undefined)?.errors?.[0];
    const short = `${what}: HTTP ${r.status}${code?.code ? ` ${code.code}` : ''}`;
    const text = `${short}${code?.message ? ` (${code.message})` : ''} via ${r.via}`;
    if (r.status >= 500 || r.status === 408 || r.status === 429) throw new Retryable(text, short);
    // docker restarts a layer upload on any error other than unauthorized / denied.
    if (what.startsWith('upload') && r.status !== 401 && r.status !== 403) throw new Retryable(text, short);
    throw new Fatal(text);
  }

  #location(r: Reply & { via: string }, what: string): string {
    const raw = r.headers.location;
    if (raw === undefined) throw new Fatal(`${what}: no Location (via ${r.via})`);
    const loc = new URL(raw, this.ctx.publicUrl);
    if (loc.origin !== new URL(this.ctx.publicUrl).origin) throw new Fatal(`${what}: Location ${raw} bypasses the proxy (via ${r.via})`);
    return `${loc.pathname}${loc.search}`;
  }
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function shortPath(p: string): string {
  const q = p.indexOf('?');
  return q < 0 ? p : `${p.slice(0, q)}?…`;
}

/** Waits `ms`, or rejects with Aborted as soon as the signal fires. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted('run ended'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted('run ended'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
