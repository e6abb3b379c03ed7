/**
 * The cluster's token key pair (made with openssl as test/support/pki.ts does) and one static
 * token response signed with it. The backends serve that file at /service/token: harbor-lb still
 * reads, parses and checks every response, but verifies the signature of this one token once and
 * answers from its verdict cache (keyed by token hash) after that, as it would for a busy cluster
 * handing out the same token again within its lifetime.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/token/libtrust.js';
import { REPO } from './configs.js';

export interface TokenFiles {
  rootCert: string;
  tokenJson: string;
  kid: string;
}

export async function makeToken(pkiDir: string, wwwDir: string, lifetimeS: number): Promise<TokenFiles> {
  const keyFile = join(pkiDir, 'private_key.pem');
  const rootCert = join(pkiDir, 'root.crt');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-keyout', keyFile, '-out', rootCert, '-subj', '/CN=harbor-lb-bench'],
    { stdio: 'pipe' },
  );
  const key = createPrivateKey(readFileSync(keyFile));
  const kid = libtrustKeyId(createPublicKey(key));
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ access: [{ type: 'repository', name: REPO, actions: ['pull'] }] })
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid })
    .setIssuer('harbor-token-issuer')
    .setAudience('harbor-registry')
    .setSubject('')
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + lifetimeS)
    .setJti(randomUUID())
    .sign(key);
  const tokenJson = join(wwwDir, 'token.json');
  writeFileSync(tokenJson, JSON.stringify({ token, access_token: token, expires_in: lifetimeS, issued_at: new Date(now * 1000).toISOString() }));
  return { rootCert, tokenJson, kid };
}
