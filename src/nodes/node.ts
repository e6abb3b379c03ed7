import { Pool } from 'undici';
import type { NodeConfig } from '../config/schema.js';
import { nodeTlsOptions, type NodeTlsOptions } from './node-tls.js';

export type NodeState = 'healthy' | 'unhealthy' | 'quarantined' | 'draining' | 'unknown';
/** What health checking alone says of a node; drain and quarantine are kept apart and win over it. */
export type HealthVerdict = 'unknown' | 'healthy' | 'unhealthy';

export interface CheckResult {
  at: number;
  ok: boolean;
  detail: string;
}

export interface NodeFlag {
  code: string;
  message: string;
  since: string;
}

export interface PoolOptions {
  connectTimeout: number;
  headersTimeout: number;
  idleTimeout: number;
  maxConnections: number;
}

/** One Harbor node: its configuration, its connection pool and the live state routing reads. */
export class ClusterNode {
  readonly name: string;
  readonly url: string;
  readonly origin: string;
  readonly weight: number;
  readonly pool: Pool;
  /** TLS options of every pool that talks to this node (its private CA); undefined: the defaults. */
  readonly tls: NodeTlsOptions | undefined;
  state: NodeState = 'unknown';
  stateSince: number;
  stateWhy = 'not checked yet';
  readonly flags = new Map<string, NodeFlag>();
  /** Requests forwarded and not yet finished. */
  inflight = 0;
  requests = 0;
  failures = 0;

  // Conditions the state is derived from (NodeSet.refresh).
  health: HealthVerdict = 'unknown';
  healthWhy = 'not checked yet';
  drained = false;
  quarantined = false;
  quarantineWhy = '';

  // Active checks: the last result and the current run (> 0 passes in a row, < 0 failures in a row).
  lastCheck: CheckResult | undefined;
  checkStreak = 0;
  // Passive detection.
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;

  constructor(cfg: NodeConfig, pool: PoolOptions, now: number) {
    this.name = cfg.name;
    this.url = cfg.url;
    this.origin = new URL(cfg.url).origin;
    this.weight = cfg.weight;
    this.stateSince = now;
    this.tls = nodeTlsOptions(cfg);
    this.pool = new Pool(this.origin, {
      connect: this.tls,
      connections: pool.maxConnections,
      pipelining: 1,
      connectTimeout: pool.connectTimeout,
      headersTimeout: pool.headersTimeout,
      bodyTimeout: pool.idleTimeout,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      // node:http clients may send heads up to 64 KiB (large bearer tokens); allow the same back.
      maxHeaderSize: 65_536,
    });
  }
}
