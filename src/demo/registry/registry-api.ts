import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { allows, challenge, type RegistryAuth } from '../registry-auth.js';
import { requestOrigin as origin } from '../request-origin.js';
import { isDigest, type RegistryStorage } from './storage.js';
import { packState, unpackState } from './upload-state.js';

const NAME = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*';
const ROUTES: Array<[RegExp, string]> = [
  [new RegExp(`^/v2/(${NAME})/blobs/uploads/?$`), 'uploads'],
  [new RegExp(`^/v2/(${NAME})/blobs/uploads/([0-9a-f-]+)$`), 'upload'],
  [new RegExp(`^/v2/(${NAME})/blobs/(sha256:[a-f0-9]{64})$`), 'blob'],
  [new RegExp(`^/v2/(${NAME})/manifests/([A-Za-z0-9_.:-]+)$`), 'manifest'],
  [new RegExp(`^/v2/(${NAME})/tags/list$`), 'tags'],
];
const MAX_MANIFEST = 4 * 1024 * 1024;
const MANIFEST_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
]);

export interface RegistryApiOptions {
  storage: RegistryStorage;
  auth: RegistryAuth;
  /** The registry's http.secret: signs `_state`; nodes sharing storage must share it. */
  httpSecret: string;
  service: string;
  /** The realm a 401 advertises, from the request (Harbor 2.x builds it from Host). */
  realm: (req: IncomingMessage) => string;
}

/**
 * The part of the registry API v2 that docker, podman and skopeo use, on shared storage:
 * token checks, blob uploads (monolithic and chunked, `_state` signed like distribution), blob
 * HEAD/GET with Range, manifests by tag and digest with digest checks, tag lists.
 */
export class RegistryApi {
  constructor(private readonly o: RegistryApiOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let match: RegExpExecArray | null = null;
    let kind = 'base';
    if (path !== '/v2/' && path !== '/v2') {
      for (const [re, k] of ROUTES) {
        match = re.exec(path);
        if (match) {
          kind = k;
          break;
        }
      }
      if (kind === 'base') return this.#error(req, res, 404, 'NAME_INVALID', 'invalid repository name or path');
    }
    const repo = match?.[1];
    const action = method === 'GET' || method === 'HEAD' ? 'pull' : 'push';
    const auth = await this.o.auth.check(req.headers.authorization);
    const scope = repo ? `repository:${repo}:${action === 'pull' ? 'pull' : 'pull,push'}` : undefined;
    if (!auth.ok) {
      res.setHeader('www-authenticate', challenge(this.o.realm(req), this.o.service, scope, auth.reason === 'invalid_token' ? 'invalid_token' : undefined));
      return this.#error(req, res, 401, 'UNAUTHORIZED', 'authentication required');
    }
    if (repo && !allows(auth.access, repo, action)) {
      res.setHeader('www-authenticate', challenge(this.o.realm(req), this.o.service, scope, 'insufficient_scope'));
      return this.#error(req, res, 401, 'UNAUTHORIZED', 'authentication required');
    }
    switch (kind) {
      case 'base':
        return this.#json(req, res, 200, {});
      case 'uploads':
        return method === 'POST' ? this.#startUpload(req, res, repo!) : this.#error(req, res, 405, 'UNSUPPORTED', 'method not allowed');
      case 'upload':
        return this.#upload(req, res, repo!, match![2]!, url);
      case 'blob':
        return method === 'GET' || method === 'HEAD' ? this.#blob(req, res, match![2]!) : this.#error(req, res, 405, 'UNSUPPORTED', 'method not allowed');
      case 'manifest':
        if (method === 'PUT') return this.#putManifest(req, res, repo!, match![2]!);
        return method === 'GET' || method === 'HEAD' ? this.#getManifest(req, res, repo!, match![2]!) : this.#error(req, res, 405, 'UNSUPPORTED', 'method not allowed');
      default: {
        const tags = await this.o.storage.tags(repo!);
        if (!tags) return this.#error(req, res, 404, 'NAME_UNKNOWN', 'repository name not known to registry');
        return this.#json(req, res, 200, { name: repo, tags });
      }
    }
  }

  async #startUpload(req: IncomingMessage, res: ServerResponse, repo: string): Promise<void> {
    // distribution 2.8 ignores ?digest= and any body here (single-request uploads were never
    // implemented): a monolithic upload is this POST and then one PUT with the whole blob.
    const uuid = await this.o.storage.startUpload();
    req.resume();
    const state = { Name: repo, UUID: uuid, Offset: 0, StartedAt: new Date().toISOString() };
    res.writeHead(202, {
      location: `${origin(req)}/v2/${repo}/blobs/uploads/${uuid}?_state=${packState(this.o.httpSecret, state)}`,
      'docker-upload-uuid': uuid,
      range: '0-0',
      'content-length': 0,
    });
    res.end();
  }

  async #upload(req: IncomingMessage, res: ServerResponse, repo: string, uuid: string, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const state = unpackState(this.o.httpSecret, url.searchParams.get('_state') ?? '');
    const size = await this.o.storage.uploadSize(uuid);
    if (!state || state.UUID !== uuid || state.Name !== repo || size === undefined) {
      req.resume();
      return this.#error(req, res, 404, 'BLOB_UPLOAD_INVALID', 'blob upload invalid', {});
    }
    if (method === 'DELETE') {
      await this.o.storage.cancel(uuid);
      res.writeHead(204, { 'content-length': 0 });
      return void res.end();
    }
    if (method === 'GET') {
      res.writeHead(204, { range: `0-${Math.max(size - 1, 0)}`, 'docker-upload-uuid': uuid, 'content-length': 0 });
      return void res.end();
    }
    if (method === 'PATCH') {
      const total = await this.o.storage.append(uuid, req);
      const next = { ...state, Offset: total };
      res.writeHead(202, {
        location: `${origin(req)}/v2/${repo}/blobs/uploads/${uuid}?_state=${packState(this.o.httpSecret, next)}`,
        'docker-upload-uuid': uuid,
        range: `0-${Math.max(total - 1, 0)}`,
        'content-length': 0,
      });
      return void res.end();
    }
    if (method === 'PUT') {
      await this.o.storage.append(uuid, req);
      return this.#finish(req, res, repo, uuid, url.searchParams.get('digest'));
    }
    req.resume();
    return this.#error(req, res, 405, 'UNSUPPORTED', 'method not allowed');
  }

  async #finish(req: IncomingMessage, res: ServerResponse, repo: string, uuid: string, digest: string | null): Promise<void> {
    if (digest === null || !isDigest(digest)) return this.#error(req, res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
    if (!(await this.o.storage.commit(uuid, digest))) return this.#error(req, res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
    res.writeHead(201, { location: `${origin(req)}/v2/${repo}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': 0 });
    res.end();
  }

  async #blob(req: IncomingMessage, res: ServerResponse, digest: string): Promise<void> {
    const size = await this.o.storage.blobSize(digest);
    if (size === undefined) return this.#error(req, res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'docker-content-digest': digest, 'accept-ranges': 'bytes', etag: `"${digest}"` };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start > end || start >= size) {
        res.writeHead(416, { 'content-range': `bytes */${size}` });
        return void res.end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = size === 0 ? 0 : end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) return void res.end();
    await pipeline(this.o.storage.readBlob(digest, start, end), res);
  }

  async #putManifest(req: IncomingMessage, res: ServerResponse, repo: string, ref: string): Promise<void> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > MAX_MANIFEST) return this.#error(req, res, 400, 'SIZE_INVALID', 'manifest too large');
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (isDigest(ref) && ref !== digest) return this.#error(req, res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
    let doc: { mediaType?: string; config?: { digest?: string }; layers?: Array<{ digest?: string }> };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      return this.#error(req, res, 400, 'MANIFEST_INVALID', 'manifest invalid');
    }
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim() || doc.mediaType || '';
    if (!MANIFEST_TYPES.has(mediaType)) return this.#error(req, res, 400, 'MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`);
    for (const d of [doc.config?.digest, ...(doc.layers ?? []).map((l) => l.digest)]) {
      if (d !== undefined && (await this.o.storage.blobSize(d)) === undefined) {
        return this.#error(req, res, 400, 'MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', { digest: d });
      }
    }
    await this.o.storage.putBlob(body);
    await this.o.storage.putManifest(repo, digest, mediaType, isDigest(ref) ? undefined : ref);
    res.writeHead(201, { location: `${origin(req)}/v2/${repo}/manifests/${digest}`, 'docker-content-digest': digest, 'content-length': 0 });
    res.end();
  }

  async #getManifest(req: IncomingMessage, res: ServerResponse, repo: string, ref: string): Promise<void> {
    const m = await this.o.storage.manifest(repo, ref);
    const size = m ? await this.o.storage.blobSize(m.digest) : undefined;
    if (!m || size === undefined) return this.#error(req, res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    res.writeHead(200, { 'content-type': m.mediaType, 'docker-content-digest': m.digest, 'content-length': size, etag: `"${m.digest}"` });
    if (req.method === 'HEAD') return void res.end();
    await pipeline(this.o.storage.readBlob(m.digest), res);
  }

  #json(req: IncomingMessage, res: ServerResponse, status: number, doc: unknown): void {
    const body = JSON.stringify(doc);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  #error(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string, detail: unknown = null): void {
    req.resume();
    this.#json(req, res, status, { errors: [{ code, message, detail }] });
  }
}
