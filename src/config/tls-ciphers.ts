import { createSecureContext } from 'node:tls';

/**
 * Mozilla's "intermediate" profile for TLS 1.2 (ssl-config.mozilla.org): forward-secret key
 * exchange and AEAD ciphers only. Node's default list also takes static-RSA key exchange and
 * CBC-SHA1 suites. TLS 1.3 suites are not named here, so they stay Node's defaults.
 */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Why this OpenSSL refuses a cipher string (nothing in it matches, or it is malformed), or undefined when it takes it. */
export function cipherListProblem(ciphers: string): string | undefined {
  try {
    createSecureContext({ ciphers });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
