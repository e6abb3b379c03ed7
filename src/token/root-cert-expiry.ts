import type { Logger } from '../log/loggers.js';
import type { TrustStore } from './trust-store.js';

/** Warns of each certificate in token.rootCert that expires within 30 days (at start and on every reload that changes the keys). */
export function warnExpiringRootCerts(store: TrustStore, logger: Logger, now: number): void {
  for (const k of store.expiring(now, 30 * 86_400_000)) {
    logger.warn(
      { event: 'root_cert_expiring', kid: k.kid, subject: k.subject, validTo: k.validTo.toISOString() },
      `token.rootCert certificate ${k.subject} (kid ${k.kid}) expires ${k.validTo.toISOString()}: distribution rejects tokens once it has; rotate the cluster key pair`,
    );
  }
}
