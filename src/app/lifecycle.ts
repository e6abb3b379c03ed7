import { createAdminServer } from '../admin/server.js';
import type { ConfigStatus, ReloadResult } from '../config/live-config.js';
import type { Config } from '../config/schema.js';
import { flushLogger } from '../log/loggers.js';
import { residentBytes } from '../util/resident-bytes.js';
import { closeServer, createListener, listen, openForHandedConnections, stopAccepting } from '../proxy/listener.js';
import { warnExpiringRootCerts } from '../token/root-cert-expiry.js';
import type { Timer } from '../util/clock.js';
import type { Parts } from './compose.js';
import type { Socket } from 'node:net';
import type { Server } from 'node:http';
import { ProxyProtocolGate } from '../proxy/proxy-protocol-gate.js';
import { TrustedPeers } from '../proxy/trusted-peers.js';
import type { WorkerPool, WorkerStatus } from '../workers/worker-pool.js';
import { AggregatedMetrics } from '../workers/worker-metrics.js';

/**
 * What this process is: the whole of harbor-lb (`single`, proxy.workers 1), a request worker
 * (the proxy listener alone, on the port the control plane gives it), or the control plane of
 * request workers (the admin listener, checks and probes; the workers serve the traffic).
 */
export type Role =
  | { kind: 'single' }
  /** handoff: the control plane accepts the port's connections and hands them over; the worker binds nothing. */
  | { kind: 'worker'; port: number; handoff: boolean }
  | { kind: 'control'; pool: WorkerPool };

export interface StartedUrls {
  proxyUrl: string;
  adminUrl: string;
  proxyPort: number;
  adminPort: number;
}

/** What the admin API offers about the config: a reload, and the state of the config in force. */
export interface ConfigControl {
  reload(): ReloadResult;
  status(): ConfigStatus;
}

/**
 * Starting and stopping an instance: the listeners bound, the loops started, and on close the
 * requests in flight drained before everything is closed in order.
 */
export class Lifecycle {
  #closing: Promise<void> | undefined;
  #startedAt: number | undefined;

  constructor(
    private readonly parts: Parts,
    private readonly config: Config,
    private readonly control: ConfigControl,
    private readonly role: Role = { kind: 'single' },
  ) {}

  /** All or nothing: if any step fails, whatever was bound, connected or started before it is closed again. */
  async start(): Promise<StartedUrls> {
    const { parts, config } = this;
    this.#startedAt = parts.clock.now();
    const { logger } = parts;
    try {
      // What a previous run kept, before anything is served from it or added (the evicting process; workers open files).
      if (this.role.kind !== 'worker') await parts.cache?.load();
      const urls = await this.#listen();
      // No publicUrl was given and the port was "any": clients reach us on the port just bound.
      if (new URL(config.publicUrl).port === '0') parts.rewriter.setPublicUrl(urls.proxyUrl);
      // A request worker serves; checks, probes and their findings are the control plane's.
      if (this.role.kind === 'worker') return urls;
      parts.checks.start();
      parts.trustProbe?.start({ periodic: config.token.probe.enabled });
      parts.uploadProbe.start();
      parts.history.start();
      if (parts.trust) warnExpiringRootCerts(parts.trust, parts.logger, parts.clock.now());
      const workers = this.role.kind === 'control' ? this.role.pool.count : 1;
      logger.info({ event: 'listening', proxy: urls.proxyUrl, admin: urls.adminUrl, nodes: config.nodes.map((n) => n.name), workers }, `harbor-lb listening (${workers} request worker${workers === 1 ? '' : 's'})`);
      return urls;
    } catch (err) {
      logger.error({ event: 'start_failed', err }, `harbor-lb could not start: ${(err as Error).message}`);
      await this.close(0);
      throw err;
    }
  }

  async #listen(): Promise<StartedUrls> {
    const { parts, config, role } = this;
    const host = (a: string) => (a.includes(':') ? `[${a}]` : a);
    const proto = config.listen.tls ? 'https' : 'http';
    const proxyUrl = (port: number) => `${proto}://${host(config.listen.address)}:${port}`;
    if (role.kind === 'worker') {
      const server = this.#proxyListener();
      if (role.handoff) {
        openForHandedConnections(server);
        return { proxyUrl: proxyUrl(role.port), adminUrl: '', proxyPort: role.port, adminPort: 0 };
      }
      const proxyPort = await listen(server, role.port, config.listen.address, 'client traffic (listen)', true);
      return { proxyUrl: proxyUrl(proxyPort), adminUrl: '', proxyPort, adminPort: 0 };
    }
    const pool = role.kind === 'control' ? role.pool : undefined;
    const proxy = pool === undefined ? this.#proxyListener() : undefined;
    const admin = createAdminServer({
      nodes: parts.nodes,
      health: parts.health,
      outliers: parts.outliers,
      skew: parts.skew,
      metrics: pool ? new AggregatedMetrics(parts.metrics, pool) : parts.metrics,
      sticky: () => ({ store: parts.store.kind, connected: parts.store.connected(), entries: parts.store.size() }),
      token: config.admin.token,
      allowedHosts: config.admin.allowedHosts,
      queued: pool ? (node) => pool.queued(node) : (node) => parts.admission.queued(node),
      workers: pool
        ? { refresh: () => pool.refresh(), status: () => pool.status(), serving: () => pool.serving() }
        : { refresh: async () => {}, status: () => [this.#ownStatus()], serving: () => true },
      logger: parts.logger,
      reload: () => this.control.reload(),
      configStatus: () => this.control.status(),
      history: () => parts.history.document(),
      cache: () => parts.cache?.stats(),
    });
    parts.servers.admin = admin;
    let proxyPort: number;
    let adminPort: number;
    if (pool === undefined) {
      proxyPort = await listen(proxy!, config.listen.port, config.listen.address, 'client traffic (listen)');
      adminPort = await listen(admin, config.admin.port, config.admin.address, 'the admin API (admin)');
    } else {
      // The workers first: /-/ready must not answer before anything serves the proxy port.
      proxyPort = await pool.start(config.listen.port);
      adminPort = await listen(admin, config.admin.port, config.admin.address, 'the admin API (admin)');
    }
    return { proxyUrl: proxyUrl(proxyPort), adminUrl: `http://${host(config.admin.address)}:${adminPort}`, proxyPort, adminPort };
  }

  /** The client-facing listener, with its connection guard and PROXY protocol gate. */
  #proxyListener(): Server {
    const { parts, config } = this;
    const proxy = createListener(config.listen, (req, res) => parts.handler.handle(req, res));
    parts.servers.proxy = proxy;
    parts.connections.attach(proxy);
    // After every other 'connection' handler: it stands in front of them all.
    if (config.listen.proxyProtocol.length > 0) {
      const refuse = (socket: Socket, ip: string, why: string) => parts.connections.refuseProxyHeader(socket, ip, why);
      new ProxyProtocolGate(new TrustedPeers(config.listen.proxyProtocol), config.listen.headersTimeout, refuse, config.listen.maxConnections).attach(proxy);
    }
    return proxy;
  }

  /** This process as /-/status lists it when it serves the traffic itself. */
  #ownStatus(): WorkerStatus {
    const { handler, clock } = this.parts;
    return { index: 1, pid: process.pid, state: 'running', requests: handler.handled(), inflight: handler.inflight(), rssBytes: residentBytes(), restarts: 0, startedAt: new Date(this.#startedAt ?? clock.now()).toISOString(), connections: null, stalled: false };
  }

  /**
   * Once: a second call (after a failed start(), or a second signal) waits for the first rather
   * than closing pools and clients that are already gone.
   */
  close(graceMs = this.config.listen.shutdownGrace): Promise<void> {
    return (this.#closing ??= this.#closeAll(graceMs));
  }

  async #closeAll(graceMs: number): Promise<void> {
    const p = this.parts;
    const { proxy, admin } = p.servers;
    // The workers let their requests finish first; the control plane's checks keep the nodes' state right meanwhile.
    if (this.role.kind === 'control') await this.role.pool.close(graceMs);
    // A worker given its connections never listens, and drains all the same.
    if (proxy !== undefined && (proxy.listening || (this.role.kind === 'worker' && this.role.handoff))) {
      stopAccepting(proxy);
      p.connections.closeIdle();
      await this.#drain(graceMs);
    }
    p.checks.stop();
    p.outliers.stop();
    p.answers.stop();
    p.metrics.close();
    p.rateWatch.stop();
    p.proxyDeps.deadlines?.stop();
    p.proxyDeps.writes.flush();
    p.proxyDeps.reclaimer.close();
    p.history.stop();
    await Promise.all([p.trustProbe?.stop(), p.uploadProbe.stop(), p.store.close(), proxy && closeServer(proxy), admin && closeServer(admin), p.checks.close()]);
    await p.nodes.close();
    p.flights.close();
    await Promise.all([flushLogger(p.logger), p.routing.flush()]);
  }

  /** Lets the requests in flight finish, for up to graceMs. */
  async #drain(graceMs: number): Promise<void> {
    const { handler, logger, clock } = this.parts;
    const inflight = handler.inflight();
    const unflushed = handler.unflushed();
    if (inflight === 0 && unflushed === 0) return;
    logger.info({ event: 'draining_connections', inflight, unflushed, graceMs }, `waiting up to ${graceMs} ms for ${inflight} request(s) in flight and ${unflushed} answer(s) a slow client has not read yet`);
    let timer: Timer | undefined;
    await Promise.race([handler.idle(), new Promise<void>((resolve) => (timer = clock.setTimeout(resolve, graceMs)))]);
    if (timer) clock.clearTimeout(timer);
  }
}
