import { randomUUID, type KeyObject, createPublicKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../token/libtrust.js';

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServiceOptions {
  /** The node's private_key.pem. */
  signingKey: KeyObject;
  issuer: string;
  service: string;
  /** user -> password; Harbor's default is admin / Harbor12345. */
  users: Readonly<Record<string, string>>;
  expiresIn?: number;
  now?: () => number;
  /**
   * Issue tokens for whatever `service` the client names, written into `aud` (a permissive token
   * service); Harbor's refuses an unknown service with 400, the default here.
   */
  anyService?: boolean;
}

export type TokenAnswer =
  | { status: 200; body: { token: string; access_token: string; expires_in: number; issued_at: string } }
  | { status: 400 | 401; body: { errors: Array<{ code: string; message: string; detail: unknown }> } };

/** Harbor core's token service as harbor-facts.md describes it: RS256 JWTs with the libtrust kid. */
export class TokenService {
  readonly kid: string;
  constructor(private readonly opts: TokenServiceOptions) {
    this.kid = libtrustKeyId(createPublicKey(opts.signingKey));
  }

  /** `query` as in GET /service/token; `authorization` the request's header, if any. */
  async issue(query: URLSearchParams, authorization: string | undefined): Promise<TokenAnswer> {
    const service = query.get('service');
    if (service !== null && service !== this.opts.service && this.opts.anyService !== true) {
      return { status: 400, body: errors('UNSUPPORTED', `invalid service: ${service}`) };
    }
    let user: string | undefined;
    if (authorization !== undefined) {
      user = this.#authenticate(authorization);
      if (user === undefined) return { status: 401, body: errors('UNAUTHORIZED', 'authentication required') };
    }
    const access = query.getAll('scope').flatMap((s) => grant(s, user !== undefined));
    const now = Math.floor((this.opts.now ?? Date.now)() / 1000);
    const expiresIn = this.opts.expiresIn ?? 1800;
    const jwt = new SignJWT({ access })
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: this.kid })
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.anyService === true && service !== null ? service : this.opts.service)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + expiresIn)
      .setJti(randomUUID());
    if (user !== undefined) jwt.setSubject(user);
    const token = await jwt.sign(this.opts.signingKey);
    return {
      status: 200,
      body: { token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() },
    };
  }

  #authenticate(header: string): string | undefined {
    if (!/^basic /i.test(header)) return undefined;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const user = decoded.slice(0, colon);
    return Object.hasOwn(this.opts.users, user) && this.opts.users[user] === decoded.slice(colon + 1) ? user : undefined;
  }
}

/** "repository:library/test:pull,push" -> the access the caller gets: all asked when signed in, pull only when anonymous. */
function grant(scope: string, authenticated: boolean): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const one of scope.split(' ')) {
    const first = one.indexOf(':');
    const last = one.lastIndexOf(':');
    if (first < 0 || last <= first) continue;
    const type = one.slice(0, first);
    const name = one.slice(first + 1, last);
    const asked = one.slice(last + 1).split(',').filter(Boolean);
    const actions = authenticated ? asked : asked.filter((a) => a === 'pull');
    out.push({ type, name, actions });
  }
  return out;
}

function errors(code: string, message: string) {
  return { errors: [{ code, message, detail: null }] };
}
