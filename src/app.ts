import type { ConfigStatus, ReloadResult } from './config/live-config.js';
import { LiveConfig } from './config/live-config.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import type { NodeHealth } from './health/node-health.js';
import type { OutlierDetector } from './health/outlier-detector.js';
import type { Logger } from './log/loggers.js';
import type { NodeSet } from './nodes/node-set.js';
import type { TokenGuard } from './token/token-guard.js';
import type { TrustProbe } from './token/trust-probe.js';
import { createMonotonicClock, createSystemClock } from './util/clock.js';
import type { AppDeps } from './app/app-deps.js';
import { composeParts } from './app/compose.js';
import { Lifecycle, type StartedUrls } from './app/lifecycle.js';
import { LIVE_SETTINGS, reloadSteps } from './app/reload.js';
import type { Parts } from './app/compose.js';
import type { Role } from './app/lifecycle.js';
import { WorkerPool } from './workers/worker-pool.js';
import { fileURLToPath } from 'node:url';

export type { AppDeps } from './app/app-deps.js';

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
  start(): Promise<StartedUrls>;
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

/**
 * One harbor-lb instance: its parts composed (app/compose.ts), started and closed
 * (app/lifecycle.ts), reloaded (app/reload.ts). Everything stateful hangs off the returned
 * object, so apps can run side by side.
 */
export function createApp(config: Config, deps: AppDeps = {}): App {
  // With several request workers this process is their control plane: they serve, it decides.
  const control = deps.worker === undefined && config.proxy.workers > 1;
  return composeApp(config, deps, (parts) =>
    control
      ? {
          kind: 'control',
          // A worker's silence is timed on a monotonic clock (a wall-clock step is no silence), or on a test's.
          pool: new WorkerPool(parts, config, { count: config.proxy.workers, entry: WORKER_ENTRY, logDestination: deps.logDestination, watchClock: deps.clock ?? createMonotonicClock() }, parts.clock),
        }
      : { kind: 'single' },
  ).app;
}

/** The request worker's entry module (workers/worker-main.ts). */
const WORKER_ENTRY = fileURLToPath(new URL('./workers/worker-main.js', import.meta.url));

/** An app in the role `roleOf` gives it, with its parts (a request worker reads them to report). */
export function composeApp(config: Config, deps: AppDeps, roleOf: (parts: Parts) => Role): { app: App; parts: Parts } {
  const parts = composeParts(config, { ...deps, clock: deps.clock ?? createSystemClock(), random: deps.random ?? Math.random });
  // A worker takes the config its control plane already checked and logged: it says nothing more of it.
  const live = new LiveConfig(config, parts.clock, deps.worker ? parts.logger.child({}, { level: 'silent' }) : parts.logger, LIVE_SETTINGS);
  const steps = reloadSteps(parts);
  const role = roleOf(parts);
  const noConfigFile = (): Config => {
    throw new ConfigError(['no config file to reload (started without one)'], '(reload)');
  };
  const reload = (): ReloadResult => {
    const result = live.reload(deps.loadConfig ?? noConfigFile, steps);
    if (result.ok && role.kind === 'control') role.pool.configure(live.current);
    return result;
  };
  const lifecycle = new Lifecycle(parts, config, { reload, status: () => live.status() }, role);
  const app: App = {
    get config() {
      return live.current;
    },
    nodes: parts.nodes,
    health: parts.health,
    outliers: parts.outliers,
    guard: parts.guard,
    trustProbe: parts.trustProbe,
    logger: parts.logger,
    start: () => lifecycle.start(),
    close: (graceMs) => lifecycle.close(graceMs),
    reload,
    configStatus: () => live.status(),
  };
  return { app, parts };
}
