import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { DestinationStream } from 'pino';
import { createMetrics } from './admin/metrics.js';
import { createAdminServer } from './admin/server.js';
import { createSelector } from './balance/create-selector.js';
import { RetryBudget } from './balance/retry-budget.js';
import { Pins } from './pins/pins.js';
import { MemoryPinStore } from './pins/memory-pin-store.js';
import { RedisPinStore } from './pins/redis-pin-store.js';
import type { PinStore } from './pins/pin-store.js';
import { readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ActiveHealthChecker, createHttpProbe, type HealthProbe, type HttpProbe } from './health/active-checker.js';
import { NodeHealth } from './health/node-health.js';
import { AnswerWatch } from './health/answer-watch.js';
import type { CheckVerdict } from './health/verdict.js';
import type { ClusterNode } from './nodes/node.js';
import { ClockSkew, clockSkewOptions } from './health/clock-skew.js';
import { NodeFlags } from './nodes/node-flags.js';
import { OutlierDetector } from './health/outlier-detector.js';
import { ConfigError } from './config/load.js';
import { LiveConfig, type ConfigStatus, type ReloadResult } from './config/live-config.js';
import type { ReloadPlan } from './config/reload-plan.js';
import type { Config } from './config/schema.js';
import { TokenGuard } from './token/token-guard.js';
import { TrustProbe } from './token/trust-probe.js';
import { TrustStore } from './token/trust-store.js';
import { TokenVerifier } from './token/verifier.js';
import { createLoggers, flushLogger, type Logger } from './log/loggers.js';
import { NodeSet, nodeSetOptions } from './nodes/node-set.js';
import { checkNodeCas } from './nodes/node-tls.js';
import { answerWaits, attemptTimes, nodeTraffic, outlierReports, retriesInFlight } from './proxy/attempt-observers.js';
import type { ProxyDeps } from './proxy/proxy-deps.js';
import { createRequestHandler } from './proxy/request-handler.js';
import { OriginRewriter } from './proxy/headers.js';
import { closeServer, createListener, listen, listenTlsContext } from './proxy/listener.js';
import { TrustedPeers } from './proxy/trusted-peers.js';
import { BodyRateWatch } from './proxy/body-rate.js';
import { ClientLimits } from './proxy/client-limits.js';
import { NodeAdmission } from './proxy/node-admission.js';
import { ConnectionGuard } from './proxy/connection-guard.js';
import { createSystemClock, type Clock, type Timer } from './util/clock.js';
import type { Random } from './util/random.js';

export interface AppDeps {
  clock?: Clock;
  random?: Random;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** Replaces the HTTP health probe (unit tests script answers with it). */
  healthProbe?: HealthProbe;
  /**
   * Reads the config again for a reload (SIGHUP, POST /-/reload): the config file, validated.
   * Without it the app cannot reload.
   */
  loadConfig?: () => Config;
}

export interface App {
  /** The config in force (a reload replaces it). */
  readonly config: Config;
  readonly nodes: NodeSet;
  readonly health: NodeHealth;
  readonly outliers: OutlierDetector;
  /** Token awareness, when token.rootCert is configured. */
  readonly guard: TokenGuard | undefined;
  readonly trustProbe: TrustProbe | undefined;
  readonly logger: Logger;
  /** Binds both listeners; ports 0 in the config mean "any free port", read them back from here. */
  start(): Promise<{ proxyUrl: string; adminUrl: string; proxyPort: number; adminPort: number }>;
  /**
   * Stops accepting connections, lets requests in flight finish for up to `graceMs`
   * (listen.shutdownGrace by default), then closes everything left.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * Re-reads the config (deps.loadConfig) and applies what can change live: nodes added, removed
   * (they drain first) and re-weighted, health, balance, sticky TTLs, log level, the TLS
   * certificate. An invalid file is refused whole and the old config stays. Never throws.
   */
  reload(): ReloadResult;
  configStatus(): ConfigStatus;
}

/** Composition root: everything stateful hangs off the returned object, so apps can run side by side. */
export function createApp(config: Config, deps: AppDeps = {}): App {
  const clock = deps.clock ?? createSystemClock();
  const random = deps.random ?? Math.random;
  const { logger, routing } = createLoggers({ ...config.log, destination: deps.logDestination });
  checkNodeCas(config);
  const nodes = new NodeSet(config, clock);
  nodes.on('state', ({ node, from, to, why }) => {
    const level = to === 'healthy' ? 'info' : 'warn';
    logger[level]({ event: 'node_state', node: node.name, from, to, why }, `node ${node.name} is now ${to}: ${why}`);
  });
  nodes.on('rule', ({ rule, active, nodes: names, why }) => {
    logger[active ? 'warn' : 'info']({ event: rule, active, nodes: names }, `${rule} ${active ? 'on' : 'off'}: ${why}`);
  });
  const flags = new NodeFlags(nodes, logger, clock);
  const skew = new ClockSkew(nodes, flags, clockSkewOptions(config));
  const health = new NodeHealth(nodes, config.health, clock, skew);
  // Rebuilt when a reload changes the health section; nodes joining or leaving are added and
  // removed. The probe exists with checks off too: failed requests ask for it (a liveness check then).
  let httpProbe: HttpProbe | undefined;
  let checker: ActiveHealthChecker | undefined;
  let probe: HealthProbe;
  const buildChecker = (cfg: Config['health']) => {
    httpProbe = deps.healthProbe === undefined ? createHttpProbe(cfg, nodes) : undefined;
    probe = deps.healthProbe ?? httpProbe!.probe;
    checker = cfg.enabled ? new ActiveHealthChecker(nodes, health, probe, cfg.interval, clock, random) : undefined;
  };
  buildChecker(config.health);
  // The check failed requests ask for: with checks on it is one more check like the periodic ones.
  const recheck = async (node: ClusterNode): Promise<CheckVerdict> => {
    const verdict = await probe(node);
    if (checker !== undefined && nodes.has(node)) health.recordCheck(node, verdict);
    return verdict;
  };
  const outliers = new OutlierDetector(nodes, config.health.passive, clock, logger, recheck);
  const answers = new AnswerWatch(clock, (node) => outliers.slowAnswer(node));
  // Requests still waiting on a node taken out go elsewhere at once, rather than wait out their timeout.
  nodes.on('state', ({ node, to }) => {
    if (to === 'unhealthy') answers.nodeOut(node);
  });
  const trust = loadTrustStore(config);
  const guard = trust
    ? new TokenGuard(
        nodes,
        new TokenVerifier(trust, { issuer: config.token.issuer, audience: config.token.service, leeway: config.token.leeway }, clock),
        trust,
        logger,
        clock,
        // The probe is made below; suspicion only comes once traffic flows, after start().
        { flags, skew, onSuspect: (node) => trustProbe?.suspect(node) },
      )
    : undefined;
  const store: PinStore =
    config.sticky.store === 'redis'
      ? new RedisPinStore(
          {
            url: config.sticky.redis!.url,
            keyPrefix: config.sticky.redis!.keyPrefix,
            sentinels: config.sticky.redis!.sentinels,
            name: config.sticky.redis!.name,
            timeout: config.sticky.redis!.timeout,
            nearCacheTtl: 5_000,
            nearCacheMax: config.sticky.maxEntries,
            maxEntries: config.sticky.maxEntries,
          },
          clock,
          logger,
        )
      : new MemoryPinStore(clock, config.sticky.maxEntries);
  const pins = new Pins(store, nodes, config.sticky, createSelector(config.balance.policy, random), (node) => skew.tokensAway(node));
  const budget = new RetryBudget(config.balance.retries.budget);
  const proto = config.listen.tls ? 'https' : 'http';
  const rewriter = new OriginRewriter(
    config.nodes.map((n) => n.url),
    config.publicUrl,
  );
  const trusted = new TrustedPeers(config.listen.trustedProxies);
  const limits = new ClientLimits(config.limits.requestsPerClient);
  const admission = new NodeAdmission(
    nodes,
    {
      sizes: { fast: config.proxy.maxConnectionsPerNode, upload: config.proxy.maxUploadConnectionsPerNode },
      nodeShare: config.limits.nodeShare,
      queueTimeout: config.limits.queueTimeout,
    },
    clock,
    (ip) => limits.busy(ip),
  );
  const rateWatch = new BodyRateWatch(config.limits.minBodyRate, config.limits.bodyRateWindow, clock);
  const connections = new ConnectionGuard({
    limits,
    maxConnections: config.listen.maxConnections,
    connectionsPerClient: config.limits.connectionsPerClient,
    trusted,
    logger,
    clock,
    tls: config.listen.tls !== undefined,
  });
  const metrics = createMetrics({ nodes, outliers, health, skew, guard, rejections: connections.counts, store, pins, clock, queued: (node) => admission.queued(node) });
  const proxyDeps: ProxyDeps = {
    nodes,
    pins,
    rewriter,
    trusted,
    onCsrfRefusal: () => trustProbe?.csrfSuspected(),
    limits,
    admission,
    observers: [nodeTraffic, outlierReports(outliers), answerWaits(answers), retriesInFlight(budget), attemptTimes(metrics)],
    rateWatch,
    minBodyRate: config.limits.minBodyRate,
    connections,
    logger: routing,
    metrics,
    proto,
    outliers,
    guard,
    budget,
    maxAttempts: config.balance.retries.attempts,
    headersTimeout: config.proxy.headersTimeout,
    uploadHeadersTimeout: config.proxy.uploadHeadersTimeout,
    instanceId: randomBytes(3).toString('hex'),
  };
  const handler = createRequestHandler(proxyDeps);
  let proxy: Server | undefined;
  let admin: Server | undefined;
  // With token checks on, the probe runs whenever traffic makes a node suspect; its periodic
  // rounds only with token.probe.enabled.
  const trustProbe =
    guard !== undefined
      ? new TrustProbe(
          nodes,
          guard,
          {
            service: config.token.service,
            repository: config.token.probe.repository,
            interval: config.token.probe.interval,
            timeout: config.token.probe.timeout,
            publicUrl: () => rewriter.publicOrigin,
          },
          clock,
          random,
        )
      : undefined;

  nodes.on('added', (node) => {
    rewriter.setNodeUrls(nodes.urls());
    checker?.add(node);
  });
  nodes.on('removed', (node) => {
    logger.info({ event: 'node_removed', node: node.name }, `node ${node.name} has left the set: removed from the config and idle, or replaced`);
    // What components kept about the node (in node slots) went with it.
    rewriter.setNodeUrls(nodes.urls());
  });

  const live = new LiveConfig(config, clock, logger);
  let started = false;
  // Files are read again on every reload, whether or not their paths changed: a certificate
  // renewed in place (cert-manager, a Secret update) and a token key rotation need no restart.
  // Everything that can fail is read and checked here, before anything is changed.
  let nextTrust: TrustStore | undefined;
  let nextTls: SecureContextOptions | undefined;
  const prepare = (plan: ReloadPlan): void => {
    const next = plan.effective;
    checkNodeCas(next);
    nextTrust = trust ? loadTrustStore(next) : undefined;
    nextTls = next.listen.tls ? loadListenTls(next.listen.tls) : undefined;
  };
  const apply = (plan: ReloadPlan): void => {
    const next = plan.effective;
    for (const n of next.nodes) nodes.upsert(n);
    for (const name of plan.nodes.removed) nodes.remove(name);
    nodes.configure(nodeSetOptions(next));
    health.configure(next.health);
    outliers.configure(next.health.passive);
    skew.configure(clockSkewOptions(next));
    if (plan.applied.some((p) => p.startsWith('health'))) {
      const old = { checker, httpProbe };
      old.checker?.stop();
      void old.httpProbe?.close();
      buildChecker(next.health);
      if (started) checker?.start();
      // Checks turned off: their last verdicts must not hold nodes out (or in) for good.
      if (old.checker && !checker) nodes.clearChecks();
    }
    if (next.balance.policy !== live.current.balance.policy) pins.setFallback(createSelector(next.balance.policy, random));
    budget.ratio = next.balance.retries.budget;
    proxyDeps.maxAttempts = next.balance.retries.attempts;
    pins.configure(next.sticky);
    if (trust && nextTrust) {
      const before = trust.kids;
      trust.replaceWith(nextTrust);
      if (before.join() !== trust.kids.join()) {
        guard?.verifier.clearCache();
        logger.info({ event: 'token_keys_changed', kids: trust.kids, previous: before }, `token.rootCert now trusts ${trust.kids.join(', ')} (was ${before.join(', ')})`);
        warnExpiring(trust);
      }
    }
    logger.level = next.log.level;
    routing.setLevel(next.log.level);
    // Checked in prepare (createSecureContext would have thrown there): new connections get it.
    if (nextTls && proxy) (proxy as TlsServer).setSecureContext(nextTls);
  };
  const warnExpiring = (store: TrustStore): void => {
    for (const k of store.expiring(clock.now(), 30 * 86_400_000)) {
      logger.warn(
        { event: 'root_cert_expiring', kid: k.kid, subject: k.subject, validTo: k.validTo.toISOString() },
        `token.rootCert certificate ${k.subject} (kid ${k.kid}) expires ${k.validTo.toISOString()}: distribution rejects tokens once it has; rotate the cluster key pair`,
      );
    }
  };
  const noConfigFile = (): Config => {
    throw new ConfigError(['no config file to reload (started without one)'], '(reload)');
  };
  const reload = (): ReloadResult => live.reload(deps.loadConfig ?? noConfigFile, { prepare, apply });

  let closing: Promise<void> | undefined;
  /**
   * Once: a second call (after a failed start(), or a second signal) waits for the first rather
   * than closing pools and clients that are already gone.
   */
  const close = (graceMs = config.listen.shutdownGrace): Promise<void> => (closing ??= closeAll(graceMs));
  async function closeAll(graceMs: number): Promise<void> {
    if (proxy?.listening) {
      proxy.close();
      proxy.closeIdleConnections();
      const inflight = handler.inflight();
      if (inflight > 0) {
        logger.info({ event: 'draining_connections', inflight, graceMs }, `waiting up to ${graceMs} ms for ${inflight} request(s) in flight`);
        let timer: Timer | undefined;
        await Promise.race([handler.idle(), new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, graceMs)))]);
        if (timer) clock.clearTimeout(timer);
      }
    }
    checker?.stop();
    outliers.stop();
    answers.stop();
    metrics.close();
    rateWatch.stop();
    await Promise.all([trustProbe?.stop(), store.close(), proxy && closeServer(proxy), admin && closeServer(admin), httpProbe?.close()]);
    await nodes.close();
    await Promise.all([flushLogger(logger), routing.flush()]);
  }

  return {
    get config() {
      return live.current;
    },
    nodes,
    health,
    outliers,
    guard,
    trustProbe,
    logger,
    async start() {
      // All or nothing: if any step fails, whatever was bound, connected or started before it is
      // closed again, so a failed start leaves no listener, Redis client or timer behind.
      try {
        proxy = createListener(config.listen, (req, res) => handler.handle(req, res));
        connections.attach(proxy);
        admin = createAdminServer({
          nodes,
          health,
          outliers,
          skew,
          metrics,
          sticky: () => ({ store: store.kind, connected: store.connected(), entries: store.size() }),
          token: config.admin.token,
          allowedHosts: config.admin.allowedHosts,
          queued: (node) => admission.queued(node),
          logger,
          reload,
          configStatus: () => live.status(),
        });
        const proxyPort = await listen(proxy, config.listen.port, config.listen.address, 'client traffic (listen)');
        const adminPort = await listen(admin, config.admin.port, config.admin.address, 'the admin API (admin)');
        const host = (a: string) => (a.includes(':') ? `[${a}]` : a);
        const urls = {
          proxyUrl: `${proto}://${host(config.listen.address)}:${proxyPort}`,
          adminUrl: `http://${host(config.admin.address)}:${adminPort}`,
          proxyPort,
          adminPort,
        };
        // No publicUrl was given and the port was "any": clients reach us on the port just bound.
        if (new URL(config.publicUrl).port === '0') rewriter.setPublicUrl(urls.proxyUrl);
        checker?.start();
        trustProbe?.start({ periodic: config.token.probe.enabled });
        started = true;
        if (trust) warnExpiring(trust);
        logger.info({ event: 'listening', proxy: urls.proxyUrl, admin: urls.adminUrl, nodes: config.nodes.map((n) => n.name) }, 'harbor-lb listening');
        return urls;
      } catch (err) {
        logger.error({ event: 'start_failed', err }, `harbor-lb could not start: ${(err as Error).message}`);
        await close(0);
        throw err;
      }
    },
    close,
    reload,
    configStatus: () => live.status(),
  };
}

/** The cluster's token certificates, or undefined when token.rootCert is not set; an unreadable file stops start-up. */
function loadTrustStore(config: Config): TrustStore | undefined {
  if (config.token.rootCert === undefined) return undefined;
  try {
    return TrustStore.fromFile(config.token.rootCert);
  } catch (err) {
    throw new ConfigError([`token.rootCert: cannot use ${config.token.rootCert}: ${(err as Error).message}`], 'token.rootCert');
  }
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
