import type { ClusterNode } from './node.js';

/**
 * A component's data about each node (a health history, a connection pool, counters), kept where
 * the node set can drop it: when a node leaves the set, every slot forgets it (disposing of what
 * needs closing), so no component keeps a list of nodes of its own to clean up.
 */
export class NodeSlot<T> {
  readonly #values = new Map<ClusterNode, T>();
  #closed = false;

  constructor(
    private readonly isMember: (node: ClusterNode) => boolean,
    private readonly init: (node: ClusterNode) => T,
    private readonly dispose?: (value: T, node: ClusterNode) => void,
  ) {}

  /**
   * The node's value, made on first use. For a node no longer in the set (a request on it still
   * finishing) a fresh value is handed out already disposed of and not kept, so nothing of it
   * outlives the node (a pool so handed out refuses its requests).
   */
  get(node: ClusterNode): T {
    let v = this.#values.get(node);
    if (v !== undefined) return v;
    v = this.init(node);
    if (this.isMember(node)) this.#values.set(node, v);
    else this.dispose?.(v, node);
    return v;
  }

  /** The node's value if it has one, without making it. */
  peek(node: ClusterNode): T | undefined {
    return this.#values.get(node);
  }

  values(): IterableIterator<T> {
    return this.#values.values();
  }

  /** Drops the node's value (the node left the set). */
  drop(node: ClusterNode): void {
    const v = this.#values.get(node);
    if (v === undefined && !this.#values.has(node)) return;
    this.#values.delete(node);
    this.dispose?.(v as T, node);
  }

  /** Drops every value (the app closes). */
  clear(): void {
    for (const [node, v] of [...this.#values]) {
      this.#values.delete(node);
      this.dispose?.(v, node);
    }
  }

  /** Drops every value for good: its owner is replaced (a reload rebuilt it); the node set lets go of it. */
  close(): void {
    this.#closed = true;
    this.clear();
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** What components need of the node set to keep per-node data: a slot, dropped when a node leaves. */
export interface NodeSlots {
  slot<T>(init: (node: ClusterNode) => T, dispose?: (value: T, node: ClusterNode) => void): NodeSlot<T>;
}
