import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { DestinationStream } from 'pino';
import { createAdminServer } from './admin/server.js';
import { createSelector } from './balance/create-selector.js';
import { RetryBudget } from './balance/retry-budget.js';
import { ActiveHealthChecker, createHttpProbe, type HealthProbe } from './health/active-checker.js';
import { NodeHealth } from './health/node-health.js';
import type { Config } from './config/schema.js';
import { createLoggers, flushLogger, type Logger } from './log.js';
import { NodeSet } from './nodes/node-set.js';
import { createRequestHandler } from './proxy/handler.js';
import { OriginRewriter } from './proxy/headers.js';
import { closeServer, createListener, listen } from './proxy/listener.js';
import { TrustedPeers } from './proxy/trusted-peers.js';
import { createSystemClock, type Clock } from './util/clock.js';
import type { Random } from './util/random.js';

export interface AppDeps {
  clock?: Clock;
  random?: Random;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** Replaces the HTTP health probe (unit tests script answers with it). */
  healthProbe?: HealthProbe;
}

export interface App {
  readonly config: Config;
  readonly nodes: NodeSet;
  readonly health: NodeHealth;
  readonly logger: Logger;
  /** Binds both listeners; ports 0 in the config mean "any free port", read them back from here. */
  start(): Promise<{ proxyUrl: string; adminUrl: string; proxyPort: number; adminPort: number }>;
  close(): Promise<void>;
}

/** Composition root: everything stateful hangs off the returned object, so apps can run side by side. */
export function createApp(config: Config, deps: AppDeps = {}): App {
  const clock = deps.clock ?? createSystemClock();
  const random = deps.random ?? Math.random;
  const { logger, routing } = createLoggers({ ...config.log, destination: deps.logDestination });
  const nodes = new NodeSet(config, clock);
  nodes.on('state', ({ node, from, to, why }) => {
    const level = to === 'healthy' ? 'info' : 'warn';
    logger[level]({ event: 'node_state', node: node.name, from, to, why }, `node ${node.name} is now ${to}: ${why}`);
  });
  const health = new NodeHealth(nodes, config.health, clock);
  const httpProbe = config.health.enabled && deps.healthProbe === undefined ? createHttpProbe(config.health, nodes.all) : undefined;
  const checker = config.health.enabled
    ? new ActiveHealthChecker(nodes.all, health, deps.healthProbe ?? httpProbe!.probe, config.health.interval, clock, random)
    : undefined;
  const proto = config.listen.tls ? 'https' : 'http';
  const rewriter = new OriginRewriter(
    config.nodes.map((n) => n.url),
    config.publicUrl,
  );
  const handler = createRequestHandler({
    nodes,
    selector: createSelector(config.balance.policy, random),
    rewriter,
    trusted: new TrustedPeers(config.listen.trustedProxies),
    logger: routing,
    proto,
    health,
    budget: new RetryBudget(config.balance.retries.budget),
    maxAttempts: config.balance.retries.attempts,
    headersTimeout: config.proxy.headersTimeout,
    uploadHeadersTimeout: config.proxy.uploadHeadersTimeout,
    instanceId: randomBytes(3).toString('hex'),
  });
  let proxy: Server | undefined;
  let admin: Server | undefined;

  return {
    config,
    nodes,
    health,
    logger,
    async start() {
      proxy = createListener(config.listen, handler);
      admin = createAdminServer({
        nodes,
        sticky: () => ({ store: config.sticky.store, connected: true }),
        token: config.admin.token,
        logger,
      });
      const proxyPort = await listen(proxy, config.listen.port, config.listen.address);
      const adminPort = await listen(admin, config.admin.port, config.admin.address);
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
      logger.info({ event: 'listening', proxy: urls.proxyUrl, admin: urls.adminUrl, nodes: config.nodes.map((n) => n.name) }, 'harbor-lb listening');
      return urls;
    },
    async close() {
      checker?.stop();
      await Promise.all([proxy && closeServer(proxy), admin && closeServer(admin), httpProbe?.close()]);
      await nodes.close();
      await Promise.all([flushLogger(logger), flushLogger(routing)]);
    },
  };
}
