import { existsSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const CERTS_D = '/etc/docker/certs.d';

/**
 * Makes dockerd trust `caFile` for the registry at `hostPort` (`/etc/docker/certs.d/HOST:PORT/ca.crt`,
 * which dockerd reads afresh at each login, push and pull). Returns the function that removes it,
 * and certs.d and /etc/docker too when this call made them.
 */
export function trustRegistryCa(hostPort: string, caFile: string): () => void {
  const made = ['/etc/docker', CERTS_D].find((d) => !existsSync(d));
  const dir = join(CERTS_D, hostPort);
  mkdirSync(dir, { recursive: true });
  copyFileSync(caFile, join(dir, 'ca.crt'));
  return () => rmSync(made ?? dir, { recursive: true, force: true });
}
