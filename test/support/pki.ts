import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TokenKeyPair {
  /** private_key.pem path and KeyObject (signs tokens). */
  keyFile: string;
  key: KeyObject;
  /** root.crt path and PEM (verifies them). */
  certFile: string;
  certPem: string;
}

/** A Harbor token key pair made the way harbor-facts.md says (RSA, self-signed cert). 2048 bits keeps tests quick. */
export function makeTokenKeyPair(dir: string, name: string, kind: 'rsa' | 'ec' = 'rsa'): TokenKeyPair {
  const keyFile = join(dir, `${name}.key.pem`);
  const certFile = join(dir, `${name}.crt`);
  const newkey = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-sha256', '-days', '30', '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${name}`], {
    stdio: 'pipe',
  });
  return { keyFile, key: createPrivateKey(readFileSync(keyFile)), certFile, certPem: readFileSync(certFile, 'utf8') };
}

export interface ServerCert {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * A throw-away CA and a server certificate signed by it, for 127.0.0.1 / localhost or, with
 * `ip`, for that address alone (in subjectAltName, where clients look).
 */
export function makeServerCert(dir: string, opts: { ip?: string } = {}): ServerCert {
  mkdirSync(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const certFile = join(dir, 'server.crt');
  const ext = join(dir, 'server.ext');
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30', '-keyout', caKey, '-out', caFile, '-subj', '/CN=harbor-lb test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${opts.ip ?? '127.0.0.1'}`]);
  writeFileSync(ext, `subjectAltName=${opts.ip ? `IP:${opts.ip}` : 'IP:127.0.0.1,DNS:localhost'}\nextendedKeyUsage=serverAuth\n`);
  run(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '30', '-sha256', '-extfile', ext, '-out', certFile]);
  return { caFile, certFile, keyFile };
}
