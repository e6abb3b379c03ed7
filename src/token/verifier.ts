import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, type ProtectedHeaderParameters } from 'jose';
import type { Clock } from '../util/clock.js';
import { libtrustKeyId } from './libtrust.js';
import type { TrustStore } from './trust-store.js';

export type TokenProblem =
  | 'MALFORMED'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_ALG'
  | 'FOREIGN_KEY'
  | 'BAD_SIGNATURE'
  | 'EXPIRED'
  | 'NOT_YET_VALID'
  | 'WRONG_ISSUER'
  | 'WRONG_AUDIENCE';

export type TokenVerdict =
  | { ok: true; kid: string; subject?: string }
  | { ok: false; problem: TokenProblem; detail: string; kid?: string };

/** Asymmetric algorithms only: never `none`, never HMAC (an HS256 "signed" with the public key is a classic forgery). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
const MAX_TOKEN = 16 * 1024;
const MAX_CACHE = 10_000;

export interface VerifierOptions {
  issuer: string;
  audience: string;
  /** Clock skew allowed on exp/nbf, ms (distribution allows 60 s). */
  leeway: number;
}

/**
 * Verifies registry tokens as distribution does: key by `x5c`, then `jwk`, then `kid`, each
 * matched against the trust store, then signature, `iss`, `aud`, `exp`/`nbf`. Never throws;
 * verdicts are cached by token hash (good ones until the token expires, bad ones for a minute).
 */
export class TokenVerifier {
  readonly #cache = new Map<string, { verdict: TokenVerdict; until: number }>();

  constructor(
    private readonly trust: TrustStore,
    private readonly opts: VerifierOptions,
    private readonly clock: Clock,
  ) {}

  async verify(token: string): Promise<TokenVerdict> {
    if (token.length > MAX_TOKEN) return { ok: false, problem: 'TOO_LARGE', detail: `token of ${token.length} bytes` };
    const hash = createHash('sha256').update(token).digest('base64url');
    const now = this.clock.now();
    const hit = this.#cache.get(hash);
    if (hit && hit.until > now) return hit.verdict;
    const { verdict, until } = await this.#verify(token, now);
    if (this.#cache.size >= MAX_CACHE) this.#cache.clear();
    this.#cache.set(hash, { verdict, until });
    return verdict;
  }

  async #verify(token: string, now: number): Promise<{ verdict: TokenVerdict; until: number }> {
    const badFor = (verdict: TokenVerdict) => ({ verdict, until: now + 60_000 });
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return badFor({ ok: false, problem: 'MALFORMED', detail: 'not a JWS compact token' });
    }
    if (typeof header.alg !== 'string' || !ALGORITHMS.includes(header.alg)) {
      return badFor({ ok: false, problem: 'UNSUPPORTED_ALG', detail: `alg ${String(header.alg)} is not accepted` });
    }
    const found = this.#keyFor(header);
    if ('problem' in found) return badFor({ ok: false, ...found });
    try {
      const { payload } = await jwtVerify(token, found.key, {
        algorithms: ALGORITHMS,
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        clockTolerance: Math.round(this.opts.leeway / 1000),
        currentDate: new Date(now),
        maxTokenAge: undefined,
      });
      const until = typeof payload.exp === 'number' ? payload.exp * 1000 + this.opts.leeway : now + 60_000;
      return { verdict: { ok: true, kid: found.kid, subject: typeof payload.sub === 'string' ? payload.sub : undefined }, until };
    } catch (err) {
      return badFor({ ok: false, kid: found.kid, ...describe(err) });
    }
  }

  #keyFor(header: ProtectedHeaderParameters): { key: KeyObject; kid: string } | { problem: TokenProblem; detail: string; kid?: string } {
    let kid: string | undefined;
    try {
      if (Array.isArray(header.x5c) && typeof header.x5c[0] === 'string') {
        kid = libtrustKeyId(new X509Certificate(Buffer.from(header.x5c[0], 'base64')).publicKey);
      } else if (header.jwk !== undefined) {
        kid = libtrustKeyId(createPublicKey({ key: header.jwk as import('node:crypto').JsonWebKey, format: 'jwk' }));
      }
    } catch {
      return { problem: 'MALFORMED', detail: 'unreadable x5c or jwk header' };
    }
    kid ??= typeof header.kid === 'string' ? header.kid : undefined;
    if (kid === undefined) return { problem: 'FOREIGN_KEY', detail: 'token names no key (no kid, jwk or x5c)' };
    const trusted = this.trust.byKid(kid);
    if (!trusted) return { problem: 'FOREIGN_KEY', kid, detail: `signed by key ${kid}, which token.rootCert does not hold (trusted: ${this.trust.kids.join(', ')})` };
    return { key: trusted.key, kid };
  }
}

function describe(err: unknown): { problem: TokenProblem; detail: string } {
  if (err instanceof errors.JWTExpired) return { problem: 'EXPIRED', detail: 'token has expired' };
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return { problem: 'WRONG_ISSUER', detail: `issuer is not the configured one (${err.reason})` };
    if (err.claim === 'aud') return { problem: 'WRONG_AUDIENCE', detail: `audience is not the configured service (${err.reason})` };
    if (err.claim === 'nbf') return { problem: 'NOT_YET_VALID', detail: 'token is not valid yet (clock skew between nodes?)' };
    return { problem: 'MALFORMED', detail: `claim ${err.claim}: ${err.reason}` };
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return { problem: 'BAD_SIGNATURE', detail: 'signature does not verify with the trusted key of that kid' };
  if (err instanceof errors.JOSEAlgNotAllowed) return { problem: 'UNSUPPORTED_ALG', detail: 'algorithm not accepted' };
  return { problem: 'MALFORMED', detail: (err as Error).message?.slice(0, 200) ?? 'unreadable token' };
}
