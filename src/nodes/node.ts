import { Pool } from 'undici';
import type { NodeConfig } from '../config/schema.js';

export type NodeState = 'healthy' | 'unhealthy' | 'quarantined' | 'draining' | 'unknown';
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
  /** Derived by NodeSet from the node's conditions; nobody else writes these three. */
  state: NodeState = 'unknown';
  stateSince: number;
  stateWhy = 'not checked yet';
  /** Raised and cleared by the token guard, with evidence. */
  readonly flags = new Map<string, NodeFlag>();
  /** Traffic counters, written by the request handler: requests forwarded and not yet finished, */
  inflight = 0;
  /** attempts sent, */
  requests = 0;
  /** and attempts the node failed. */
  failures = 0;

  constructor(cfg: NodeConfig, pool: PoolOptions, now: number) {
    this.name = cfg.name;
    this.url = cfg.url;
    this.origin = new URL(cfg.url).origin;
    this.weight = cfg.weight;
    this.stateSince = now;
    this.pool = new Pool(this.origin, {
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
