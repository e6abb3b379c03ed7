import type { ClusterNode } from '../nodes/node.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import type { Clock, Timer } from '../util/clock.js';

/** Which of a node's connection budgets an attempt uses: requests without a streamed body, or streamed uploads. */
export type PoolKind = 'fast' | 'upload';

/** A connection slot of a node's pool, held for one attempt. */
export interface Slot {
  release(): void;
}

export interface AdmissionOptions {
  /** Connections per node: proxy.maxConnectionsPerNode and maxUploadConnectionsPerNode. */
  sizes: Record<PoolKind, number>;
  /** limits.nodeShare: a client holding this share of a pool or more is heavy there (1: never). */
  nodeShare: number;
  /** limits.queueTimeout: the longest a request waits for a slot before it is answered 503. */
  queueTimeout: number;
}

/**
 * The part of each pool a heavy client may not take while it is free: kept for everyone else, so
 * one address holding a pool (slow uploads, a CI farm behind one NAT) can never delay another
 * client by more than it takes a request to be sent, while still getting 90% of the pool alone.
 */
const HEADROOM = 0.1;

interface Waiter {
  client: string;
  heavy: () => boolean;
  grant: (slot: Slot | undefined) => void;
}

class PoolSlots {
  busy = 0;
  readonly held = new Map<string, number>();
  readonly waiting: Waiter[] = [];
  constructor(
    readonly size: number,
    readonly share: number,
    readonly headroom: number,
  ) {}

  heldBy(client: string): number {
    return this.held.get(client) ?? 0;
  }

  /** Whether `client` may take a free slot now: any free slot if light, one beyond the headroom if heavy. */
  mayTake(heavy: boolean): boolean {
    const free = this.size - this.busy;
    return heavy ? free > this.headroom : free > 0;
  }

  take(client: string): Slot {
    this.busy++;
    this.held.set(client, this.heldBy(client) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.busy--;
        const n = this.heldBy(client) - 1;
        if (n <= 0) this.held.delete(client);
        else this.held.set(client, n);
        this.dispatch();
      },
    };
  }

  /** Hands free slots to waiters: light clients first, in arrival order, then heavy ones beyond the headroom. */
  dispatch(): void {
    while (this.busy < this.size && this.waiting.length > 0) {
      let i = this.waiting.findIndex((w) => !w.heavy());
      if (i < 0) {
        if (!this.mayTake(true)) return;
        i = 0;
      }
      const [w] = this.waiting.splice(i, 1);
      w!.grant(this.take(w!.client));
    }
  }
}

/**
 * Fair shares of each node's connections, instead of refusals (HAProxy's maxconn and queue is
 * the model). An attempt takes a slot of its node's pool before it is sent; while the pool has
 * room, anyone gets one however many it holds. Under contention a client holding its share
 * (limits.nodeShare) or with more requests in flight than limits.requestsPerClient is heavy: it
 * waits behind every lighter client, and never takes the last tenth of a pool, which stays for
 * others. Nobody is refused while capacity is free; a request that waited limits.queueTimeout
 * without a slot is answered 503. undici's own queue (first in, first out) is then never used.
 */
export class NodeAdmission {
  /** Each node's two budgets; a node that leaves lets its waiters go (they fail over or time out). */
  readonly #pools: NodeSlot<Record<PoolKind, PoolSlots>>;

  constructor(
    nodes: NodeSlots,
    private readonly opts: AdmissionOptions,
    private readonly clock: Clock,
    /** Whether a client has more requests in flight than limits.requestsPerClient (heavy on every node). */
    private readonly busyClient: (client: string) => boolean = () => false,
  ) {
    const make = (kind: PoolKind) => {
      const size = opts.sizes[kind];
      const share = opts.nodeShare >= 1 ? Infinity : Math.max(1, Math.floor(size * opts.nodeShare));
      return new PoolSlots(size, share, Math.max(1, Math.floor(size * HEADROOM)));
    };
    this.#pools = nodes.slot(
      () => ({ fast: make('fast'), upload: make('upload') }),
      (p) => {
        for (const s of [p.fast, p.upload]) for (const w of s.waiting.splice(0)) w.grant(undefined);
      },
    );
  }

  #slots(node: ClusterNode, pool: PoolKind): PoolSlots {
    return this.#pools.get(node)[pool];
  }

  #heavy(s: PoolSlots, client: string): boolean {
    return s.heldBy(client) >= s.share || this.busyClient(client);
  }

  /** A slot now, or undefined when the client would have to wait for one (nothing is taken then). */
  tryTake(node: ClusterNode, pool: PoolKind, client: string): Slot | undefined {
    const s = this.#slots(node, pool);
    const heavy = this.#heavy(s, client);
    // Someone waiting: a heavy client goes behind them, a light one may pass heavy waiters only.
    if (s.waiting.length > 0 && (heavy || s.waiting.some((w) => !w.heavy()))) return undefined;
    return s.mayTake(heavy) ? s.take(client) : undefined;
  }

  /** Waits for a slot; undefined after limits.queueTimeout, or when `cancelled` fires first (the client left). */
  wait(node: ClusterNode, pool: PoolKind, client: string, cancelled: (stop: () => void) => void): Promise<Slot | undefined> {
    const s = this.#slots(node, pool);
    const now = this.tryTake(node, pool, client);
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      let timer: Timer | undefined;
      const w: Waiter = {
        client,
        heavy: () => this.#heavy(s, client),
        grant: (slot) => {
          if (timer !== undefined) this.clock.clearTimeout(timer);
          resolve(slot);
        },
      };
      const leave = () => {
        const i = s.waiting.indexOf(w);
        if (i < 0) return;
        s.waiting.splice(i, 1);
        w.grant(undefined);
      };
      timer = this.clock.setTimeout(leave, this.opts.queueTimeout);
      timer.unref?.();
      s.waiting.push(w);
      cancelled(leave);
    });
  }

  /** Requests waiting for a slot of the node now (either pool), for status and metrics. */
  queued(node: ClusterNode): number {
    const p = this.#pools.peek(node);
    return p === undefined ? 0 : p.fast.waiting.length + p.upload.waiting.length;
  }
}
