import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { libtrustKeyId } from '../token/libtrust.js';

export interface AccessClaim {
  type: string;
  name: string;
  actions: string[];
}

export type RegistryAuthResult = { ok: true; access: AccessClaim[]; subject?: string } | { ok: false; reason: 'missing' | 'invalid_token' | 'insufficient_scope'; detail: string };

/**
 * Token checks of a registry, as distribution 2.8 does them: key by `kid` among the trusted
 * certificates, signature, `iss`, `aud`, 60 s leeway. A key it does not trust gives
 * `invalid_token` (the seed's random 401).
 */
export class RegistryAuth {
  readonly #keys: Map<string, KeyObject>;

  constructor(
    trusted: readonly KeyObject[],
    private readonly issuer: string,
    private readonly service: string,
    /** The node's clock: a skewed node's registry judges exp/nbf by it. */
    private readonly now: () => number = Date.now,
  ) {
    this.#keys = new Map(trusted.map((k) => {
      const pub = k.type === 'private' ? createPublicKey(k) : k;
      return [libtrustKeyId(pub), pub];
    }));
  }

  async check(authorization: string | undefined): Promise<RegistryAuthResult> {
    // distribution 2.8: split on single spaces, exactly "<bearer> <token>", the token taken as it is.
    const parts = (authorization ?? '').split(' ');
    if (parts.length !== 2 || parts[0]!.toLowerCase() !== 'bearer') return { ok: false, reason: 'missing', detail: 'authentication required' };
    const token = parts[1]!;
    try {
      const { kid } = decodeProtectedHeader(token);
      const key = typeof kid === 'string' ? this.#keys.get(kid) : undefined;
      if (!key) return { ok: false, reason: 'invalid_token', detail: `token signed by untrusted key with ID: "${String(kid)}"` };
      const { payload } = await jwtVerify(token, key, { issuer: this.issuer, audience: this.service, clockTolerance: 60, currentDate: new Date(this.now()), algorithms: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'] });
      const access = Array.isArray(payload.access) ? (payload.access as AccessClaim[]) : [];
      return { ok: true, access, subject: typeof payload.sub === 'string' ? payload.sub : undefined };
    } catch (err) {
      return { ok: false, reason: 'invalid_token', detail: (err as Error).message };
    }
  }
}

/** Whether the token's access list grants `action` on repository `name`. */
export function allows(access: readonly AccessClaim[], name: string, action: string): boolean {
  return access.some((a) => a.type === 'repository' && a.name === name && (a.actions.includes(action) || a.actions.includes('*')));
}

/** The challenge a registry sends, with the exact shape of harbor-facts.md. */
export function challenge(realm: string, service: string, scope?: string, error?: 'invalid_token' | 'insufficient_scope'): string {
  let v = `Bearer realm="${realm}",service="${service}"`;
  if (scope) v += `,scope="${scope}"`;
  if (error) v += `,error="${error}"`;
  return v;
}
