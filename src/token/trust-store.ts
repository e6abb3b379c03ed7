import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { libtrustKeyId } from './libtrust.js';

export interface TrustedKey {
  /** libtrust key id, what Harbor puts in a token's `kid`. */
  kid: string;
  /** RFC 7638 thumbprint of the public key. */
  thumbprint: string;
  key: KeyObject;
  subject: string;
  validFrom: Date;
  validTo: Date;
}

/** The cluster's token keys: every certificate of `token.rootCert` (two during a rotation). */
export class TrustStore {
  #keys: readonly TrustedKey[];
  #byKid: Map<string, TrustedKey>;

  private constructor(keys: TrustedKey[]) {
    this.#keys = keys;
    this.#byKid = new Map(keys.map((k) => [k.kid, k]));
  }

  get keys(): readonly TrustedKey[] {
    return this.#keys;
  }

  /** Takes the keys of `next` (a config reload read the bundle again: a key rotation). */
  replaceWith(next: TrustStore): void {
    this.#keys = next.#keys;
    this.#byKid = next.#byKid;
  }

  /** Certificates (root.crt) and, for set-ups without a CA such as the demo, bare PEM public keys. */
  static fromPem(pem: string): TrustStore {
    const blocks = pem.match(/-----BEGIN (CERTIFICATE|PUBLIC KEY)-----[\s\S]+?-----END \1-----/g) ?? [];
    if (blocks.length === 0) throw new Error('no PEM certificate found');
    const keys: TrustedKey[] = [];
    for (const block of blocks) {
      if (block.startsWith('-----BEGIN PUBLIC KEY')) {
        const key = createPublicKey(block);
        keys.push({ kid: libtrustKeyId(key), thumbprint: jwkThumbprint(key), key, subject: 'public key', validFrom: new Date(0), validTo: new Date(8.64e15) });
        continue;
      }
      const cert = new X509Certificate(block);
      const key = cert.publicKey;
      keys.push({
        kid: libtrustKeyId(key),
        thumbprint: jwkThumbprint(key),
        key,
        subject: cert.subject.replace(/\n/g, ', '),
        validFrom: new Date(cert.validFrom),
        validTo: new Date(cert.validTo),
      });
    }
    return new TrustStore(keys);
  }

  static fromFile(file: string): TrustStore {
    return TrustStore.fromPem(readFileSync(file, 'utf8'));
  }

  byKid(kid: string): TrustedKey | undefined {
    return this.#byKid.get(kid);
  }

  get kids(): string[] {
    return this.keys.map((k) => k.kid);
  }

  /** Certificates that expire within `withinMs` (or have), for the start-up warning. */
  expiring(now: number, withinMs: number): TrustedKey[] {
    return this.keys.filter((k) => k.validTo.getTime() - now < withinMs);
  }
}

/** RFC 7638: SHA-256 over the required JWK members in lexicographic order, base64url. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
  const canonical = `{${members.map((m) => `"${m}":"${jwk[m]}"`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}
