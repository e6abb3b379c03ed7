import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { createMetrics, type Metrics } from '../admin/metrics.js';
import { TrafficHistory } from '../admin/traffic-history.js';
import { createSelector } from '../balance/create-selector.js';
import { RetryBudget } from '../balance/retry-budget.js';
import { SlowStart } from '../balance/slow-start.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { AnswerWatch } from '../health/answer-watch.js';
import { ClockSkew, clockSkewOptions } from '../health/clock-skew.js';
import { HealthChecks } from '../health/health-checks.js';
import { UploadSecretProbe, type UploadSecretProbeOptions } from '../health/upload-secret-probe.js';
import { createNodeClient } from '../doctor/doctor-client.js';
import { NodeHealth } from '../health/node-health.js';
import { OutlierDetector } from '../health/outlier-detector.js';
import { createLoggers, type Logger, type RoutingLog } from '../log/loggers.js';
import { NodeFlags } from '../nodes/node-flags.js';
import { NodeSet } from '../nodes/node-set.js';
import { checkNodeCas } from '../nodes/node-tls.js';
import { MemoryPinStore } from '../pins/memory-pin-store.js';
import type { PinStore } from '../pins/pin-store.js';
import { Pins } from '../pins/pins.js';
import { RedisPinStore } from '../pins/redis-pin-store.js';
import { answerWaits, attemptTimes, nodeTraffic, outlierReports, retriesInFlight } from '../proxy/attempt-observers.js';
import { BodyRateWatch } from '../proxy/body-rate.js';
import { ClientLimits } from '../proxy/client-limits.js';
import { ConnectionGuard } from '../proxy/connection-guard.js';
import { OriginRewriter } from '../proxy/headers.js';
import { NodeAdmission } from '../proxy/node-admission.js';
import type { ProxyDeps } from '../proxy/proxy-deps.js';
import { createRequestHandler, type RequestHandler } from '../proxy/request-handler.js';
import { TrustedPeers } from '../proxy/trusted-peers.js';
import { TokenGuard, type Suspicion } from '../token/token-guard.js';
import { TrustProbe } from '../token/trust-probe.js';
import { TrustStore } from '../token/trust-store.js';
import { TokenVerifier, type TokenVerdict } from '../token/verifier.js';
import { createMonotonicClock, type Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { ResolvedDeps } from './app-deps.js';
import { RemotePinStore } from '../workers/remote-pin-store.js';
import { BlobFlights, spillFolder } from '../coalesce/blob-flights.js';
import { Coalescer } from '../coalesce/coalescer.js';
import { BlobCache } from '../coalesce/blob-cache.js';
import { AttemptDeadlines } from '../proxy/attempt-deadlines.js';
import { createWriteBatch, WRITE_BATCH_MAX } from '../util/write-batch.js';
import { createBufferReclaimer } from '../util/buffer-reclaimer.js';
import { ClientReads } from '../proxy/client-reads.js';
import { UNREAD_BODY_LIMIT, UNREAD_BODY_TIME, UnreadBodyLimit } from '../proxy/unread-body.js';
import { TinyPieceLimit } from '../proxy/tiny-pieces.js';
import { tmpdir } from 'node:os';

/** Everything one harbor-lb instance is made of: built once by composeParts, started, reloaded and closed as one. */
export interface Parts {
  clock: Clock;
  random: Random;
  logger: Logger;
  routing: RoutingLog;
  nodes: NodeSet;
  flags: NodeFlags;
  skew: ClockSkew;
  health: NodeHealth;
  checks: HealthChecks;
  outliers: OutlierDetector;
  answers: AnswerWatch;
  /** The cluster's token certificates, when token.rootCert is set. */
  trust: TrustStore | undefined;
  guard: TokenGuard | undefined;
  trustProbe: TrustProbe | undefined;
  store: PinStore;
  pins: Pins;
  /** Balanced traffic's weights while a node ramps up (balance.slowStart). */
  slowStart: SlowStart;
  /** HTTP_SECRET_DIFFERS found live (doctor.credentials). */
  uploadProbe: UploadSecretProbe;
  /** The status page's charts: each node's last 15 minutes of traffic, state changes and flags. */
  history: TrafficHistory;
  budget: RetryBudget;
  rewriter: OriginRewriter;
  admission: NodeAdmission;
  rateWatch: BodyRateWatch;
  connections: ConnectionGuard;
  metrics: Metrics;
  /** What the request path was given; a reload changes its retry attempts. */
  proxyDeps: ProxyDeps;
  handler: RequestHandler;
  /** The listeners, once start() has made them. */
  servers: { proxy?: Server; admin?: Server };
  /** Blob pulls others may join (coalesce.enabled) or the cache keeps, with their spill files. */
  flights: BlobFlights;
  coalescer: Coalescer;
  /** Verified blobs kept by digest (cache.dir); the control plane's evicts for its workers. */
  cache: BlobCache | undefined;
  /** Makes the sockets of connections handed to a request worker (proxy.connectionBalance least-connections). */
  clientReads: ClientReads;
}

type NodeParts = Pick<Parts, 'clock' | 'random' | 'logger' | 'routing' | 'nodes' | 'flags' | 'skew' | 'health' | 'checks' | 'outliers' | 'answers'>;
type TrustParts = Pick<Parts, 'trust' | 'guard' | 'trustProbe' | 'rewriter'>;

/** Composition root: builds every part from the config; nothing stateful lives outside the returned object. */
export function composeParts(config: Config, deps: ResolvedDeps): Parts {
  const base = composeNodes(config, deps);
  const trust = composeTrust(config, base, deps);
  const store = createPinStore(config, base, deps);
  const slowStart = new SlowStart(config.balance.slowStart, base.nodes, base.clock);
  const cluster = deps.worker?.cluster;
  const tokensAway = cluster ? (node: { name: string }) => cluster.tokensAway.has(node.name) : (node: Parameters<typeof base.skew.tokensAway>[0]) => base.skew.tokensAway(node);
  const pins = new Pins(store, base.nodes, config.sticky, createSelector(config.balance.policy, base.random, slowStart.weight), tokensAway);
  const budget = new RetryBudget(config.balance.retries.budget);
  const uploadProbe = new UploadSecretProbe(
    base.nodes,
    base.flags,
    uploadProbeOptions(config),
    (nodes) => createNodeClient({ tlsOf: (origin) => nodes.find((n) => n.origin === origin)?.tls, publicUrl: trust.rewriter.publicOrigin, timeout: config.doctor.timeout, userAgent: 'harbor-lb' }),
    base.logger,
    base.clock,
    base.random,
  );
  const history = new TrafficHistory(base.nodes, base.clock);
  return { ...base, ...trust, store, pins, budget, slowStart, uploadProbe, history, ...composeProxy(config, { ...base, ...trust, store, pins, budget }, deps), servers: {} };
}

/** The node set and what watches its nodes: flags, clock skew, active and passive health. */
function composeNodes(config: Config, deps: ResolvedDeps): NodeParts {
  const clock = deps.clock;
  const random = deps.random;
  // With request workers, the control plane and every worker write to the same output.
  const { logger, routing } = createLoggers({ ...config.log, destination: deps.logDestination, shared: config.proxy.workers > 1 });
  checkNodeCas(config);
  const nodes = new NodeSet(config, clock);
  // In a request worker the node set follows the control plane's, which alone logs its changes.
  if (deps.worker === undefined) logNodeChanges(nodes, logger);
  const flags = new NodeFlags(nodes, logger, clock);
  const skew = new ClockSkew(nodes, flags, clockSkewOptions(config));
  const health = new NodeHealth(nodes, config.health, clock, skew);
  const checks = new HealthChecks(nodes, health, config.health, clock, random, logger, deps.healthProbe);
  nodes.on('added', (node) => checks.add(node));
  const outliers = new OutlierDetector(nodes, config.health.passive, clock, logger, checks.recheck);
  const link = deps.worker?.link;
  const answers = new AnswerWatch(clock, link ? (node) => link.slowAnswer(node) : (node) => outliers.slowAnswer(node));
  // Requests still waiting on a node taken out go elsewhere at once, rather than wait out their timeout.
  nodes.on('state', ({ node, to }) => {
    if (to === 'unhealthy') answers.nodeOut(node);
  });
  return { clock, random, logger, routing, nodes, flags, skew, health, checks, outliers, answers };
}

/** The node set's changes as log lines: one per change, from the process that derives them. */
function logNodeChanges(nodes: NodeSet, logger: Logger): void {
  nodes.on('state', ({ node, from, to, why }) => {
    const level = to === 'healthy' ? 'info' : 'warn';
    logger[level]({ event: 'node_state', node: node.name, from, to, why }, `node ${node.name} is now ${to}: ${why}`);
  });
  nodes.on('rule', ({ rule, active, nodes: names, why }) => {
    logger[active ? 'warn' : 'info']({ event: rule, active, nodes: names }, `${rule} ${active ? 'on' : 'off'}: ${why}`);
  });
  nodes.on('routes', ({ node, routes, why }) => {
    if (routes.length > 0) logger.warn({ event: 'node_routes', node: node.name, out: routes, why }, `node ${node.name} is out of ${routes.join(', ')} (the others still go to it): ${why}`);
    else logger.info({ event: 'node_routes', node: node.name, out: routes }, `node ${node.name} takes every route again`);
  });
  nodes.on('removed', (node) => {
    logger.info({ event: 'node_removed', node: node.name }, `node ${node.name} has left the set: removed from the config and idle, or replaced`);
  });
}

/** Token awareness, when token.rootCert is set: the verifier, the guard that judges traffic, the probe that convicts. */
function composeTrust(config: Config, { nodes, flags, skew, logger, clock, random }: NodeParts, deps: ResolvedDeps): TrustParts {
  const rewriter = new OriginRewriter(
    config.nodes.map((n) => n.url),
    config.publicUrl,
  );
  nodes.on('added', () => rewriter.setNodeUrls(nodes.urls()));
  nodes.on('removed', () => rewriter.setNodeUrls(nodes.urls()));
  const trust = loadTrustStore(config);
  if (trust === undefined) return { trust, guard: undefined, trustProbe: undefined, rewriter };
  const link = deps.worker?.link;
  const shareVerdict = link ? (hash: string, verdict: TokenVerdict, until: number) => link.verified({ hash, verdict, until }) : undefined;
  const verifier = new TokenVerifier(trust, { issuer: config.token.issuer, audience: config.token.service, leeway: config.token.leeway }, clock, shareVerdict);
  // The probe is made below; suspicion only comes once traffic flows, after start().
  // A worker's suspicions go to the control plane, which probes and says them once for all workers.
  const onSuspect = link ? (node: { name: string; url: string }, why: Suspicion) => link.suspect(node, why) : (node: Parameters<TrustProbe['suspect']>[0]) => trustProbe.suspect(node);
  const onGoodIssuer = link ? (node: { name: string; url: string }) => link.goodIssuer(node) : undefined;
  const guard = new TokenGuard(nodes, verifier, trust, logger, clock, { flags, skew, onSuspect, onGoodIssuer, says: link === undefined });
  const probeOptions = {
    service: config.token.service,
    repository: config.token.probe.repository,
    interval: config.token.probe.interval,
    timeout: config.token.probe.timeout,
    publicUrl: () => rewriter.publicOrigin,
  };
  const trustProbe = new TrustProbe(nodes, guard, probeOptions, clock, random);
  return { trust, guard, trustProbe, rewriter };
}

function createPinStore(config: Config, { clock, logger }: NodeParts, deps: ResolvedDeps): PinStore {
  const redis = config.sticky.redis;
  // A worker's memory pins live in the control plane, so that every worker agrees.
  const memory = (): PinStore => (deps.worker ? new RemotePinStore(deps.worker.link, clock, config.sticky.maxEntries) : new MemoryPinStore(clock, config.sticky.maxEntries));
  if (config.sticky.store !== 'redis') return memory();
  const options = {
    url: redis!.url,
    keyPrefix: redis!.keyPrefix,
    sentinels: redis!.sentinels,
    name: redis!.name,
    timeout: redis!.timeout,
    nearCacheTtl: 5_000,
    nearCacheMax: config.sticky.maxEntries,
    maxEntries: config.sticky.maxEntries,
    speaksForInstance: deps.worker === undefined,
  };
  // While Redis is away, pins go to the instance's memory store (the control plane's, for a worker).
  return new RedisPinStore(options, clock, logger, memory());
}

type ProxyParts = Pick<Parts, 'admission' | 'rateWatch' | 'connections' | 'metrics' | 'proxyDeps' | 'handler' | 'flights' | 'coalescer' | 'cache' | 'clientReads'>;

/** The request path and what bounds it: client limits, fair node shares, body rates, connections, metrics. */
function composeProxy(config: Config, p: NodeParts & TrustParts & Pick<Parts, 'store' | 'pins' | 'budget'>, deps: ResolvedDeps): ProxyParts {
  const { nodes, clock, logger } = p;
  const trusted = new TrustedPeers(config.listen.trustedProxies);
  const limits = new ClientLimits(config.limits.requestsPerClient);
  const sizes = { fast: config.proxy.maxConnectionsPerNode, upload: config.proxy.maxUploadConnectionsPerNode };
  const admission = new NodeAdmission(nodes, { sizes, nodeShare: config.limits.nodeShare, queueTimeout: config.limits.queueTimeout }, clock, (ip) => limits.busy(ip));
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
  const { outliers, health, skew, guard, store, pins } = p;
  const worker = deps.worker;
  const cache = createBlobCache(config, p, deps);
  // A folder of this process's own (made with its first flight): request workers each have theirs,
  // and it goes when the process closes. Beside the cache, so a verified blob enters it by a link.
  const spillDir = spillFolder(config.coalesce.dir ?? config.cache.dir ?? tmpdir());
  // Shared with the other workers whether or not coalescing is on now: a reload may turn it on.
  const flights = new BlobFlights(spillDir, deps.worker?.link.flights, cache);
  const coalescer = new Coalescer(flights, nodes, config.coalesce.enabled, cache);
  const metrics = createMetrics({ nodes, outliers, health, skew, guard, rejections: connections.counts, store, pins, clock, queued: (node) => admission.queued(node), coalesced: flights.counts, cache });
  const tinyPieces = new TinyPieceLimit(clock);
  // TLS reads its handle itself: a TLS listener's connections get sockets like any other.
  const clientReads = new ClientReads(config.listen.tls === undefined);
  const proxyDeps: ProxyDeps = {
    nodes,
    pins,
    rewriter: p.rewriter,
    trusted,
    onCsrfRefusal: deps.worker ? () => deps.worker!.link.csrfSuspected() : () => p.trustProbe?.csrfSuspected(),
    limits,
    admission,
    observers: [nodeTraffic, outlierReports(worker ? { record: (node, v) => worker.link.verdict(node, v) } : outliers), answerWaits(p.answers), retriesInFlight(p.budget), attemptTimes(metrics)],
    rateWatch,
    minBodyRate: config.limits.minBodyRate,
    connections,
    logger: p.routing,
    metrics,
    proto: config.listen.tls ? 'https' : 'http',
    outliers: worker ? { clusterFailureOn: (route) => worker.cluster.failures.get(route) } : outliers,
    guard,
    budget: p.budget,
    maxAttempts: config.balance.retries.attempts,
    headersTimeout: config.proxy.headersTimeout,
    uploadHeadersTimeout: config.proxy.uploadHeadersTimeout,
    instanceId: randomBytes(3).toString('hex'),
    coalescer,
    // On monotonic time, as undici's own timers (which these replace) were.
    deadlines: new AttemptDeadlines(config.proxy.idleTimeout, createMonotonicClock()),
    writes: deps.writes ?? createWriteBatch({ max: WRITE_BATCH_MAX, onError: (err) => logger.error({ event: 'internal_error', err }, 'a write held to the end of the turn failed') }),
    reclaimer: deps.reclaimer ?? createBufferReclaimer(),
    tinyPieces,
    largeReads: clientReads,
    unreadBodies: new UnreadBodyLimit({
      limit: UNREAD_BODY_LIMIT,
      within: UNREAD_BODY_TIME,
      clock,
      pieces: tinyPieces,
      close: (socket, why, clientIp) => connections.closeAfterAnswer(socket, why, clientIp),
    }),
  };
  return { admission, rateWatch, connections, metrics, proxyDeps, handler: createRequestHandler(proxyDeps), flights, coalescer, cache, clientReads };
}

/** The blob cache, when cache.dir is set: a folder that cannot be made stops start-up naming it. */
function createBlobCache(config: Config, { clock, logger }: NodeParts, deps: ResolvedDeps): BlobCache | undefined {
  const { dir, maxSize } = config.cache;
  if (dir === undefined) return undefined;
  const link = deps.worker?.link;
  try {
    return new BlobCache(dir, maxSize, clock, logger, link?.cache);
  } catch (err) {
    throw new ConfigError([`cache.dir: cannot use ${dir}: ${(err as Error).message}`], 'cache.dir');
  }
}

/** The cluster's token certificates, or undefined when token.rootCert is not set; an unreadable file stops start-up. */
export function loadTrustStore(config: Config): TrustStore | undefined {
  if (config.token.rootCert === undefined) return undefined;
  try {
    return TrustStore.fromFile(config.token.rootCert);
  } catch (err) {
    throw new ConfigError([`token.rootCert: cannot use ${config.token.rootCert}: ${(err as Error).message}`], 'token.rootCert');
  }
}

/** What the live upload check takes from the config: doctor's credentials and repository, the token service. */
export function uploadProbeOptions(config: Config): UploadSecretProbeOptions {
  return { credentials: config.doctor.credentials, repository: config.doctor.repository, service: config.token.service, interval: config.doctor.uploadCheckInterval };
}
