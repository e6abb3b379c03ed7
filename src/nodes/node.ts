import { Pool } from 'undici';
import type { NodeConfig } from '../config/schema.js';
import { nodeTlsOptions, type NodeTlsOptions } from './node-tls.js';

export type NodeState = 'healthy' | 'unhealthy' | 'quarantined' | 'draining' | 'unknown';
export interface NodeFlag {
  code: string;
  message: string;
  since: string;
  /** What an operator does about it. */
  fix: string;
  /** `error`: clients hit it; `warning`: harbor-lb works around it (findings catalogue). */
  severity: 'error' | 'warning';
}

export interface PoolOptions {
  connectTimeout: number;
  headersTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  maxUploadConnections: number;
}

/** One Harbor node: its configuration, its connection pools and the live state routing reads. */
export class ClusterNode {
  readonly name: string;
  readonly url: string;
  readonly origin: string;
  /** Its share of new traffic; a reload may change it. */
  weight: number;
  /** The private CA bundle's path (config nodes[].ca), when it has one. */
  readonly ca: string | undefined;
  /** Connections for requests whose body is not streamed (GET, HEAD, DELETE, small bodies read up front). */
  readonly pool: Pool;
  /**
   * Connections for requests whose body streams from the client (blob uploads). A budget of its
   * own: slow uploads can fill it, never the connections pulls and token requests need.
   */
  readonly uploadPool: Pool;
  /** TLS options of every pool that talks to this node (its private CA); undefined: the defaults. */
  readonly tls: NodeTlsOptions | undefined;
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
    this.ca = cfg.ca;
    this.stateSince = now;
    this.tls = nodeTlsOptions(cfg);
    this.pool = createNodePool(this.origin, pool, pool.maxConnections, this.tls);
    this.uploadPool = createNodePool(this.origin, pool, pool.maxUploadConnections, this.tls);
  }

  close(): Promise<unknown> {
    return Promise.all([this.pool.destroy(), this.uploadPool.destroy()]);
  }
}

function createNodePool(origin: string, pool: PoolOptions, connections: number, tls: NodeTlsOptions | undefined): Pool {
  return new Pool(origin, {
    connect: tls,
    connections,
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
