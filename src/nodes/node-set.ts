import { EventEmitter } from 'node:events';
import type { Config } from '../config/schema.js';
import type { Clock } from '../util/clock.js';
import { ClusterNode, type NodeState } from './node.js';

export interface NodeStateChange {
  node: ClusterNode;
  from: NodeState;
  to: NodeState;
  why: string;
}

/** All configured nodes and the answer to "which of them may take new traffic now". */
export class NodeSet extends EventEmitter<{ state: [NodeStateChange] }> {
  readonly all: readonly ClusterNode[];
  readonly #byName = new Map<string, ClusterNode>();
  #available: readonly ClusterNode[] | undefined;

  constructor(cfg: Config, private readonly clock: Clock) {
    super();
    const poolOpts = {
      connectTimeout: cfg.proxy.connectTimeout,
      headersTimeout: cfg.proxy.headersTimeout,
      idleTimeout: cfg.proxy.idleTimeout,
      maxConnections: cfg.proxy.maxConnectionsPerNode,
    };
    this.all = cfg.nodes.map((n) => new ClusterNode(n, poolOpts, clock.now()));
    for (const n of this.all) this.#byName.set(n.name, n);
  }

  get(name: string): ClusterNode | undefined {
    return this.#byName.get(name);
  }

  /**
   * Nodes that may take new traffic: the healthy ones. While no node has been found healthy yet
   * (start-up, or health checking off), the ones in state `unknown` are tried rather than refusing everything.
   */
  available(): readonly ClusterNode[] {
    if (this.#available === undefined) {
      const healthy = this.all.filter((n) => n.state === 'healthy');
      this.#available = healthy.length > 0 ? healthy : this.all.filter((n) => n.state === 'unknown');
    }
    return this.#available;
  }

  /** Derives a node's state from its conditions: drain wins over quarantine, which wins over health. */
  refresh(node: ClusterNode): void {
    if (node.drained) this.setState(node, 'draining', 'drained by an operator: no new clients, in-flight requests finish');
    else if (node.quarantined) this.setState(node, 'quarantined', node.quarantineWhy);
    else this.setState(node, node.health, node.healthWhy);
  }

  setState(node: ClusterNode, to: NodeState, why: string): void {
    const from = node.state;
    if (from === to) return;
    node.state = to;
    node.stateSince = this.clock.now();
    node.stateWhy = why;
    this.#available = undefined;
    this.emit('state', { node, from, to, why });
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((n) => n.pool.destroy()));
  }
}
