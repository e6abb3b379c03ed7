import { readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { createSelector } from '../balance/create-selector.js';
import { uploadProbeOptions } from './compose.js';
import { ConfigError } from '../config/load.js';
import type { ReloadPlan } from '../config/reload-plan.js';
import type { Config } from '../config/schema.js';
import { clockSkewOptions } from '../health/clock-skew.js';
import { nodeSetOptions } from '../nodes/node-set.js';
import { checkNodeCas } from '../nodes/node-tls.js';
import { listenTlsContext } from '../proxy/listener.js';
import { warnExpiringRootCerts } from '../token/root-cert-expiry.js';
import type { TrustStore } from '../token/trust-store.js';
import { loadTrustStore, type Parts } from './compose.js';

/** What a reload read and checked before changing anything: files are read again on every reload. */
interface Prepared {
  trust: TrustStore | undefined;
  tls: SecureContextOptions | undefined;
}

/** A part of harbor-lb that takes settings live: the config paths (prefixes) it takes, and how. */
interface LivePart {
  readonly paths: readonly string[];
  /** Applies the config in force after the reload; applying an unchanged config again changes nothing. */
  apply(parts: Parts, next: Config, plan: ReloadPlan, prepared: Prepared): void;
}

const changed = (plan: ReloadPlan, prefix: string): boolean => plan.applied.some((p) => p === prefix || p.startsWith(`${prefix}.`));

/**
 * Every setting a running harbor-lb takes without a restart, with the part that applies it. The
 * list of live settings (LIVE_SETTINGS, what `/-/reload` reports as applied) is derived from it.
 */
const LIVE_PARTS: readonly LivePart[] = [
  {
    paths: ['nodes'],
    apply: ({ nodes }, next, plan) => {
      for (const n of next.nodes) nodes.upsert(n);
      for (const name of plan.nodes.removed) nodes.remove(name);
    },
  },
  { paths: ['health.passive.maxEjectedFraction', 'health.passive.ejectFor', 'balance.panicThreshold', 'sticky.ttl.upload'], apply: ({ nodes }, next) => nodes.configure(nodeSetOptions(next)) },
  {
    paths: ['health'],
    apply: ({ health, outliers, checks }, next, plan) => {
      health.configure(next.health);
      outliers.configure(next.health.passive);
      if (changed(plan, 'health')) checks.configure(next.health);
    },
  },
  // token.leeway, the other half of these options, is not live: the plan keeps its old value.
  { paths: ['health.maxClockSkew'], apply: ({ skew }, next) => skew.configure(clockSkewOptions(next)) },
  {
    paths: ['balance.policy', 'sticky.ttl', 'sticky.loadFactor', 'sticky.keys'],
    apply: ({ pins, random, slowStart }, next, plan) => {
      if (changed(plan, 'balance.policy')) pins.setFallback(createSelector(next.balance.policy, random, slowStart.weight));
      pins.configure(next.sticky);
    },
  },
  { paths: ['balance.slowStart'], apply: ({ slowStart }, next) => slowStart.configure(next.balance.slowStart) },
  {
    paths: ['balance.retries'],
    apply: ({ budget, proxyDeps }, next) => {
      budget.ratio = next.balance.retries.budget;
      proxyDeps.maxAttempts = next.balance.retries.attempts;
    },
  },
  { paths: ['token.rootCert'], apply: (parts, _next, _plan, prepared) => replaceTrust(parts, prepared.trust) },
  {
    paths: ['log.level'],
    apply: ({ logger, routing }, next) => {
      logger.level = next.log.level;
      routing.setLevel(next.log.level);
    },
  },
  {
    paths: ['listen.tls'],
    apply: ({ servers }, _next, _plan, prepared) => {
      // Checked in prepare (createSecureContext would have thrown there): new connections get it.
      if (prepared.tls && servers.proxy) (servers.proxy as TlsServer).setSecureContext(prepared.tls);
    },
  },
  // New pulls follow it; flights under way finish with the clients on them. cache.dir needs a restart.
  { paths: ['coalesce.enabled'], apply: ({ coalescer }, next) => coalescer.configure(next.coalesce.enabled) },
  { paths: ['cache.maxSize'], apply: ({ cache }, next) => void cache?.configure(next.cache.maxSize) },
  // The doctor reads its settings from the config in force each time it runs: nothing to apply.
  { paths: ['doctor'], apply: ({ uploadProbe }, next) => uploadProbe.configure(uploadProbeOptions(next)) },
];

/** Settings a running harbor-lb applies on reload, as path prefixes; every other change waits for a restart. */
export const LIVE_SETTINGS: readonly string[] = LIVE_PARTS.flatMap((p) => p.paths);

/**
 * The two steps of a reload (see LiveConfig): prepare reads and checks everything that can fail
 * (node CAs, token.rootCert, the listener's certificate) before anything changes; apply then
 * hands each live part the config in force.
 */
export function reloadSteps(parts: Parts): { prepare(plan: ReloadPlan): void; apply(plan: ReloadPlan): void } {
  let prepared: Prepared = { trust: undefined, tls: undefined };
  return {
    prepare: (plan) => {
      const next = plan.effective;
      checkNodeCas(next);
      // Read again whether or not the paths changed: a certificate renewed in place (cert-manager,
      // a Secret update) and a token key rotation need no restart.
      prepared = { trust: parts.trust ? loadTrustStore(next) : undefined, tls: next.listen.tls ? loadListenTls(next.listen.tls) : undefined };
    },
    apply: (plan) => {
      for (const part of LIVE_PARTS) part.apply(parts, plan.effective, plan, prepared);
    },
  };
}

function replaceTrust({ trust, guard, logger, clock }: Parts, next: TrustStore | undefined): void {
  if (!trust || !next) return;
  const before = trust.kids;
  trust.replaceWith(next);
  if (before.join() === trust.kids.join()) return;
  guard?.verifier.clearCache();
  logger.info({ event: 'token_keys_changed', kids: trust.kids, previous: before }, `token.rootCert now trusts ${trust.kids.join(', ')} (was ${before.join(', ')})`);
  warnExpiringRootCerts(trust, logger, clock.now());
}

/**
 * The listener's certificate and key, read and checked together (a key that does not match the
 * certificate, or a file that is not PEM, is refused naming the field) for a reload to install.
 */
function loadListenTls(tls: NonNullable<Config['listen']['tls']>): SecureContextOptions {
  const read = (field: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(tls[field]);
    } catch (err) {
      throw new ConfigError([`listen.tls.${field}: cannot use ${tls[field]}: ${(err as Error).message}`], `listen.tls.${field}`);
    }
  };
  const options = listenTlsContext(tls, read('cert'), read('key'));
  try {
    createSecureContext(options);
  } catch (err) {
    throw new ConfigError([`listen.tls.key: does not go with listen.tls.cert, or either is not PEM: ${(err as Error).message}`], 'listen.tls');
  }
  return options;
}
