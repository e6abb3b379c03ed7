import { createHash, type KeyObject } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * The key id docker/libtrust gives a public key, which distribution matches against a token's `kid`:
 * SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32 without padding, in 12 groups of 4.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const byte of digest) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >>> bits) & 31];
    }
  }
  // 30 bytes = 240 bits = 48 base32 characters exactly: no remainder, no padding.
  return out.match(/.{4}/g)!.join(':');
}
