import { Buffer } from 'node:buffer';
import { HashedLru } from '../util/hashed-lru.js';
import type { SessionCookie, UserSource } from '../pins/pins.js';
import { basicUser, bearerToken, readCookie } from './credentials.js';

/** Harbor's UI session cookies (`sid` in 2.x, `beegosessionID` in 1.x), then core's CSRF cookie (gorilla/csrf). */
const SESSION_COOKIES = ['sid', 'beegosessionID', '_gorilla_csrf'] as const;

/** What the proxy reads from a request head besides the path: body presence and credentials, never kept. */
export interface RequestHead {
  hasBody: boolean;
  /** The declared Content-Length, when there is one. */
  contentLength: number | undefined;
  /** User name from Basic auth or the `sub` of a bearer token; never the secret. */
  user: string | undefined;
  /** Where `user` came from; set whenever `user` is. */
  userFrom?: UserSource;
  /** The bearer token, when the Authorization header is exactly `Bearer <JWS>` (see credentials.ts). */
  bearer?: string;
  /** How many Authorization headers came: more than one is refused (which one a node reads is its own choice). */
  authorizations: number;
  /**
   * The UI session or CSRF cookie as a node reads it; `ambiguous` when the request carries two
   * different values of it (refused: nodes and proxies disagree on which one counts).
   */
  session: SessionCookie | 'ambiguous' | undefined;
}


/** Cached for a token without a usable `sub` (a subject is never empty). */
const NO_SUBJECT = '';

/**
 * Per-app cache of bearer token -> subject, so one client's many registry requests decode its
 * token once. A bounded LRU keyed by the token's SHA-256: never the token itself, and a client
 * sending endless distinct tokens only pushes out the least recently used entries.
 */
export class SubjectCache {
  readonly #cache: HashedLru<string>;

  constructor(max = 4096) {
    this.#cache = new HashedLru(max);
  }

  subjectOf(jwt: string): string | undefined {
    let sub = this.#cache.get(jwt);
    if (sub === undefined) {
      sub = decodeSubject(jwt) ?? NO_SUBJECT;
      this.#cache.set(jwt, sub);
    }
    return sub === NO_SUBJECT ? undefined : sub;
  }

  get size(): number {
    return this.#cache.size;
  }

  /** The stored keys (token hashes), most recently used first: for diagnostics and tests. */
  keys(): string[] {
    return this.#cache.keys();
  }
}

function decodeSubject(jwt: string): string | null {
  const a = jwt.indexOf('.');
  const b = jwt.indexOf('.', a + 1);
  // Up to what the listener's 64 KiB head allows: a token of ~190 scopes is ~50 KB and its user is still shown.
  if (a < 0 || b < 0 || b - a > 65_536) return null;
  try {
    const payload = JSON.parse(Buffer.from(jwt.slice(a + 1, b), 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' && payload.sub.length > 0 && payload.sub.length <= 256 ? payload.sub : null;
  } catch {
    return null;
  }
}

/**
 * `verified` says, without verifying (a cached verdict), whether a bearer token is known to verify
 * against token.rootCert; absent, every bearer's user is `unverified-token`.
 */
export function readRequestHead(raw: readonly string[], subjects: SubjectCache, verified?: (token: string) => boolean): RequestHead {
  let hasBody = false;
  let contentLength: number | undefined;
  let user: string | undefined;
  let userFrom: UserSource | undefined;
  let bearer: string | undefined;
  let authorizations = 0;
  let cookies: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const n = Number(raw[i + 1]);
      if (Number.isSafeInteger(n) && n >= 0) contentLength = n;
      if (raw[i + 1] !== '0') hasBody = true;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      hasBody = true;
    } else if (name.length === 13 && name.toLowerCase() === 'authorization') {
      // Only the first is read; a second one makes the request refused (see request-check).
      if (++authorizations === 1) ({ user, userFrom, bearer } = credentialsOf(raw[i + 1]!, subjects, verified));
    } else if (name.length === 6 && name.toLowerCase() === 'cookie') {
      (cookies ??= []).push(raw[i + 1]!);
    }
  }
  const head: RequestHead = { hasBody, contentLength, user, authorizations, session: cookies === undefined ? undefined : sessionOf(cookies) };
  if (userFrom !== undefined) head.userFrom = userFrom;
  if (bearer !== undefined) head.bearer = bearer;
  return head;
}

function sessionOf(cookies: readonly string[]): SessionCookie | 'ambiguous' | undefined {
  const found = readCookie(cookies, SESSION_COOKIES);
  if (found === undefined) return undefined;
  if (found.read === 'ambiguous') return 'ambiguous';
  if (found.read === undefined || found.read.value.length === 0 || found.read.value.length > 512) return undefined;
  return { kind: found.name === '_gorilla_csrf' ? 'csrf' : 'session', value: found.read.value };
}

function credentialsOf(
  auth: string,
  subjects: SubjectCache,
  verified: ((token: string) => boolean) | undefined,
): { user?: string; userFrom?: UserSource; bearer?: string } {
  const basic = basicUser(auth);
  if (basic !== undefined) return { user: basic, userFrom: 'basic' };
  const token = bearerToken(auth);
  if (token === undefined) return {};
  const sub = subjects.subjectOf(token);
  if (sub === undefined) return { bearer: token };
  return { user: sub, userFrom: verified?.(token) === true ? 'token' : 'unverified-token', bearer: token };
}

const SECRET_PARAM = /^(?:password|passwd|pwd|pass|token|access_token|refresh_token|id_token|secret|client_secret|api_key|apikey|code|signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token)$/i;

/** The request target for the log: the query's secret-looking values replaced, everything else kept. */
export function loggablePath(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const parts = url.slice(q + 1).split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const eq = p.indexOf('=');
    let key = eq < 0 ? p : p.slice(0, eq);
    try {
      key = decodeURIComponent(key);
    } catch {
      /* keep it raw */
    }
    if (SECRET_PARAM.test(key)) {
      parts[i] = `${eq < 0 ? p : p.slice(0, eq)}=[REDACTED]`;
      changed = true;
    }
  }
  return changed ? `${url.slice(0, q)}?${parts.join('&')}` : url;
}
