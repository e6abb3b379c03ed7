import { buildConnector, Pool } from 'undici';
import { freeingWrites } from '../util/free-once-written.js';
import type { NodeConfig } from '../config/schema.js';
import type { NodeConditions } from './node-conditions.js';
import { ReadPool } from './read-pool.js';
import { NodeTraffic } from './node-traffic.js';
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

/**
 * What NodeSet keeps of a node and alone writes: its derived state, its weight (a reload may
 * change it), the conditions the state comes from, its flags. A ClusterNode reads it.
 */
export interface NodeRecord {
  state: NodeState;
  stateSince: number;
  stateWhy: string;
  weight: number;
  readonly conditions: NodeConditions;
  readonly flags: ReadonlyMap<string, NodeFlag>;
}

/**
 * One Harbor node: what it is (name, URL, TLS, connection pools), its traffic counters, and a
 * read-only view of the state NodeSet derives for it. Nobody but NodeSet changes its state,
 * weight, conditions or flags; traffic is counted through `traffic.begin()`.
 */
export class ClusterNode {
  readonly name: string;
  readonly url: string;
  readonly origin: string;
  /** The private CA bundle's path (config nodes[].ca), when it has one. */
  readonly ca: string | undefined;
  /** Connections for requests whose body is not streamed (GET, HEAD, DELETE, small bodies read up front). */
  readonly pool: Pool;
  /**
   * Connections for requests whose body streams from the client (blob uploads). A budget of its
   * own: slow uploads can fill it, never the connections pulls and token requests need.
   */
  readonly uploadPool: Pool;
  /**
   * Connections for GETs and HEADs that reuse their read buffers (read-pool.ts). They count against
   * the same connection slots as `pool` (node-admission.ts), so the two together stay within
   * proxy.maxConnectionsPerNode's requests in flight.
   */
  readonly reads: ReadPool;
  /** TLS options of every pool that talks to this node (its private CA); undefined: the defaults. */
  readonly tls: NodeTlsOptions | undefined;
  readonly traffic = new NodeTraffic();
  readonly #record: NodeRecord;

  constructor(cfg: NodeConfig, pool: PoolOptions, record: NodeRecord) {
    this.name = cfg.name;
    this.url = cfg.url;
    const url = new URL(cfg.url);
    this.origin = url.origin;
    this.ca = cfg.ca;
    this.#record = record;
    this.tls = nodeTlsOptions(cfg);
    this.pool = createNodePool(this.origin, pool, pool.maxConnections, this.tls);
    this.uploadPool = createNodePool(this.origin, pool, pool.maxUploadConnections, this.tls, true);
    this.reads = new ReadPool(url, { connectTimeout: pool.connectTimeout, bodyTimeout: pool.idleTimeout, keepAliveTimeout: 4_000, maxIdle: pool.maxConnections, ca: this.tls?.ca });
  }

  get state(): NodeState {
    return this.#record.state;
  }

  get stateSince(): number {
    return this.#record.stateSince;
  }

  get stateWhy(): string {
    return this.#record.stateWhy;
  }

  /** Its share of new traffic. */
  get weight(): number {
    return this.#record.weight;
  }

  /** The named inputs its state is derived from (see NodeSet). */
  get conditions(): NodeConditions {
    return this.#record.conditions;
  }

  /** Findings about the node itself, by code (raised by harbor-lb's own probes and checks). */
  get flags(): ReadonlyMap<string, NodeFlag> {
    return this.#record.flags;
  }

  close(): Promise<unknown> {
    this.reads.close();
    return Promise.all([this.pool.destroy(), this.uploadPool.destroy()]);
  }
}

/**
 * An undici pool to the node. `freeing`: its sockets free the upload body pieces marked so once
 * written (util/free-once-written.ts); its connections are otherwise made as undici makes them.
 */
function createNodePool(origin: string, pool: PoolOptions, connections: number, tls: NodeTlsOptions | undefined, freeing = false): Pool {
  return new Pool(origin, {
    connect: freeing ? freeingConnector(pool, tls) : tls,
    connections,
    pipelining: 1,
    connectTimeout: pool.connectTimeout,
    headersTimeout: pool.headersTimeout,
    bodyTimeout: pool.idleTimeout,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 300_000,
    // node:http clients may send heads up to 64 KiB (large bearer tokens); allow the same back.
    maxHeaderSize: 65_536,
    // HTTP/1.1 only: connection counts, limits and the read pool are per connection (undici 8 would take h2 where ALPN offers it).
    allowH2: false,
  });
}

/** undici's own connector, with the options its Pool would give it, whose sockets free marked buffers once written. */
function freeingConnector(pool: PoolOptions, tls: NodeTlsOptions | undefined): buildConnector.connector {
  const connect = buildConnector({ ...tls, allowH2: false, timeout: pool.connectTimeout });
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      callback(null, freeingWrites(socket));
    });
}
