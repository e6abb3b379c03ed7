import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, type ProtectedHeaderParameters } from 'jose';
import type { Clock } from '../util/clock.js';
import { HashedLru, hashKey } from '../util/hashed-lru.js';
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
  | { ok: true; kid: string; subject?: string; /** `exp` in ms, when the token has one. */ expiresAt?: number }
  | {
      ok: false;
      problem: TokenProblem;
      detail: string;
      kid?: string;
      /** For EXPIRED and NOT_YET_VALID: when the issuer's clock said the token was made (ms), evidence of its clock. */
      issuedAt?: number;
    };

/** Asymmetric algorithms only: never `none`, never HMAC (an HS256 "signed" with the public key is a classic forgery). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
/**
 * Largest token verified. A user asking for many scopes gets a valid token of tens of KB (about
 * 50 KB for 190 scopes), so size alone is never a verdict on the node; past this the token is
 * passed through unverified (token-guard counts it) rather than judged.
 */
export const MAX_TOKEN_BYTES = 1024 * 1024;
const DEFAULT_CACHE_MAX = 10_000;

export interface VerifierOptions {
  issuer: string;
  audience: string;
  /** Clock skew allowed on exp/nbf, ms (distribution allows 60 s). */
  leeway: number;
  /** Verdicts kept (least recently used go first); 10 000 by default. */
  cacheMax?: number;
}

/**
 * Verifies registry tokens as distribution does: key by `x5c`, then `jwk`, then `kid`, each
 * matched against the trust store, then signature, `iss`, `aud`, `exp`/`nbf`. Never throws;
 * verdicts are cached by token hash (good ones until the token expires, bad ones for a minute) in
 * a bounded LRU, so clients sending endless distinct tokens cannot grow it or flush it at once.
 */
export class TokenVerifier {
  readonly #cache: HashedLru<{ verdict: TokenVerdict; until: number }>;

  constructor(
    private readonly trust: TrustStore,
    private readonly opts: VerifierOptions,
    private readonly clock: Clock,
    /** A token verified good here (request workers share these, by the token's hash only: hashKey()). */
    private readonly onGood: (hash: string, verdict: TokenVerdict, until: number) => void = () => {},
  ) {
    this.#cache = new HashedLru(opts.cacheMax ?? DEFAULT_CACHE_MAX);
  }

  async verify(token: string): Promise<TokenVerdict> {
    if (token.length > MAX_TOKEN_BYTES) return { ok: false, problem: 'TOO_LARGE', detail: `token of ${token.length} bytes, over the ${MAX_TOKEN_BYTES} verified` };
    const hit = this.cached(token);
    if (hit) return hit;
    const { verdict, until } = await this.#verify(token, this.clock.now());
    this.#cache.set(token, { verdict, until });
    if (verdict.ok) this.onGood(hashKey(token), verdict, until);
    return verdict;
  }

  /** A good verdict another request worker reached for the token of this hash: known here too, without verifying again. */
  learn(hash: string, verdict: TokenVerdict, until: number): void {
    if (verdict.ok && until > this.clock.now()) this.#cache.setHashed(hash, { verdict, until });
  }

  /**
   * The verdict already known for a token, without verifying: for the hot path (the routing log),
   * where a signature check per request is not worth it. Undefined when not verified lately.
   */
  cached(token: string): TokenVerdict | undefined {
    if (token.length > MAX_TOKEN_BYTES) return undefined;
    const hit = this.#cache.get(token);
    if (hit === undefined) return undefined;
    if (hit.until > this.clock.now()) return hit.verdict;
    this.#cache.delete(token);
    return undefined;
  }

  /** The key ids token.rootCert holds now. */
  get trustedKids(): string[] {
    return this.trust.kids;
  }

  /** Forgets every verdict: the trusted keys changed, so old verdicts may no longer hold. */
  clearCache(): void {
    this.#cache.clear();
  }

  /** Verdicts held now; never more than `cacheMax`. */
  get cacheSize(): number {
    return this.#cache.size;
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
      return { verdict: { ok: true, kid: found.kid, subject: typeof payload.sub === 'string' ? payload.sub : undefined, expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined }, until };
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

function describe(err: unknown): { problem: TokenProblem; detail: string; issuedAt?: number } {
  if (err instanceof errors.JWTExpired) return { problem: 'EXPIRED', detail: 'token has expired', ...issuedAt(err.payload) };
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return { problem: 'WRONG_ISSUER', detail: `issuer is not the configured one (${err.reason})` };
    if (err.claim === 'aud') return { problem: 'WRONG_AUDIENCE', detail: `audience is not the configured service (${err.reason})` };
    if (err.claim === 'nbf') return { problem: 'NOT_YET_VALID', detail: 'token is not valid yet (clock skew between nodes?)', ...issuedAt(err.payload) };
    return { problem: 'MALFORMED', detail: `claim ${err.claim}: ${err.reason}` };
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return { problem: 'BAD_SIGNATURE', detail: 'signature does not verify with the trusted key of that kid' };
  if (err instanceof errors.JOSEAlgNotAllowed) return { problem: 'UNSUPPORTED_ALG', detail: 'algorithm not accepted' };
  return { problem: 'MALFORMED', detail: (err as Error).message?.slice(0, 200) ?? 'unreadable token' };
}

/** The token's `iat` (or `nbf`) in ms, when it has one: the issuer's clock at the time. */
function issuedAt(payload: { iat?: unknown; nbf?: unknown }): { issuedAt?: number } {
  const t = typeof payload.iat === 'number' ? payload.iat : typeof payload.nbf === 'number' ? payload.nbf : undefined;
  return t === undefined ? {} : { issuedAt: t * 1000 };
}
