import type { ClusterNode } from '../nodes/node.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import type { Clock, Timer } from '../util/clock.js';
import { LiveCounts } from '../util/live-counts.js';

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

/** How a wait for a slot ended. */
export type Admitted =
  | { kind: 'slot'; node: ClusterNode; slot: Slot }
  /** No slot came within limits.queueTimeout. */
  | { kind: 'timeout' }
  /** Every node waited on left the set (a reload): the request may go to another. */
  | { kind: 'gone' }
  /** The client left while it waited. */
  | { kind: 'left' };

/**
 * The part of each pool a heavy client does not take at once while it is free: kept for everyone
 * else, so one address holding a pool (slow uploads, a CI farm behind one NAT) cannot delay a
 * lighter client by more than the time a connection takes to come free.
 */
const HEADROOM = 0.1;
/**
 * A heavy client waiting while only the headroom is free gets it after this long if no lighter
 * client came for it: capacity that is free is not withheld until a refusal. But while other
 * clients use the pool (one took a slot within OTHERS_SEEN_MS), one client never holds its last
 * tenth, which stays for them: a probe held a node's every connection with slow reads, and every
 * other client waited out queueTimeout. A client alone on the pool (everyone behind one NAT, or
 * behind an outer balancer that hides their addresses) gets all of it; a pool of under ten has no
 * tenth to keep.
 */
export const HEADROOM_GRACE_MS = 1000;
/** How recently another client must have taken a slot for the last tenth to be kept from one client. */
export const OTHERS_SEEN_MS = 60_000;

interface Waiter {
  client: string;
  since: number;
  /** The pools it waits in (one per candidate node); the first to grant wins. */
  pools: PoolSlots[];
  done: boolean;
  graceTimer: Timer | undefined;
  settle(result: Admitted): void;
}

class PoolSlots {
  busy = 0;
  /** Slots held per client (a LiveCounts: one client alone adds and removes no entry per request). */
  readonly held = new LiveCounts();
  readonly waiting: Waiter[] = [];
  /** The client that took the last slot, and when a slot was last taken by a client other than the one before it. */
  #lastClient: string | undefined;
  #othersAt = -Infinity;
  constructor(
    readonly node: ClusterNode,
    readonly size: number,
    readonly share: number,
    readonly headroom: number,
    /** Of the headroom, what one client never holds: its tenth, nothing in a pool of under ten (a worker's share on a many-core host). */
    readonly kept: number,
    private readonly busyClient: (client: string) => boolean,
    private readonly now: () => number,
  ) {}

  heldBy(client: string): number {
    return this.held.get(client);
  }

  heavy(client: string): boolean {
    return this.heldBy(client) >= this.share || this.busyClient(client);
  }

  /**
   * Whether a slot is free for `client` now: any free slot when light; beyond the headroom when
   * heavy, or one of the headroom after the grace (while others use the pool, only as long as the
   * client holds less than nine tenths).
   */
  mayTake(client: string, waitedMs = 0): boolean {
    const free = this.size - this.busy;
    if (free <= 0) return false;
    if (!this.heavy(client) || free > this.headroom) return true;
    if (waitedMs < HEADROOM_GRACE_MS) return false;
    return this.heldBy(client) < this.size - this.kept || this.now() - this.#othersAt >= OTHERS_SEEN_MS;
  }

  take(client: string): Slot {
    if (client !== this.#lastClient) {
      // Two clients in turn: the pool is shared (one client alone never sets this).
      if (this.#lastClient !== undefined) this.#othersAt = this.now();
      this.#lastClient = client;
    }
    this.busy++;
    this.held.add(client);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.busy--;
        this.held.remove(client);
        this.dispatch();
      },
    };
  }

  /** Hands free slots to waiters: light clients first in arrival order, then heavy ones. */
  dispatch(): void {
    for (;;) {
      for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.done) this.waiting.splice(i, 1);
      if (this.busy >= this.size || this.waiting.length === 0) return;
      const now = this.now();
      const light = this.waiting.find((w) => !this.heavy(w.client));
      const next = light ?? this.waiting.find((w) => this.mayTake(w.client, now - w.since));
      // A heavy waiter gets the headroom only when nobody lighter waits for it.
      if (next === undefined || (light === undefined && !this.mayTake(next.client, now - next.since))) return;
      next.settle({ kind: 'slot', node: this.node, slot: this.take(next.client) });
    }
  }
}

/**
 * Fair shares of each node's connections, instead of refusals (HAProxy's maxconn and queue is
 * the model). An attempt takes a slot of its node's pool before it is sent; while the pool has
 * room, anyone gets one however many it holds. A client holding its share (limits.nodeShare), or
 * with more requests in flight than limits.requestsPerClient, is heavy: it waits behind every
 * lighter client, and takes the last tenth of a pool only once no lighter one has claimed it for
 * HEADROOM_GRACE_MS, and never so that it alone holds more than nine tenths. A request that may go
 * to any of several nodes waits on all of them. Nobody is refused while capacity is free but the
 * headroom a client that holds the rest is kept from; a request that waited limits.queueTimeout
 * without a slot is answered 503. undici's own queue (first in, first out) is then never used.
 */
export class NodeAdmission {
  /** Each node's two budgets; a node that leaves sends its waiters on to their other candidates. */
  readonly #pools: NodeSlot<Record<PoolKind, PoolSlots>>;

  constructor(
    nodes: NodeSlots,
    private readonly opts: AdmissionOptions,
    private readonly clock: Clock,
    /** Whether a client has more requests in flight than limits.requestsPerClient (heavy on every node). */
    busyClient: (client: string) => boolean = () => false,
  ) {
    const make = (node: ClusterNode, kind: PoolKind) => {
      const size = opts.sizes[kind];
      const share = opts.nodeShare >= 1 ? Infinity : Math.max(1, Math.floor(size * opts.nodeShare));
      return new PoolSlots(node, size, share, Math.max(1, Math.floor(size * HEADROOM)), Math.floor(size * HEADROOM), busyClient, () => clock.now());
    };
    this.#pools = nodes.slot(
      (node) => ({ fast: make(node, 'fast'), upload: make(node, 'upload') }),
      (p) => {
        for (const s of [p.fast, p.upload]) for (const w of s.waiting.splice(0)) this.#leave(w, s);
      },
    );
  }

  /** A slot now, or undefined when the client would have to wait for one (nothing is taken then). */
  tryTake(node: ClusterNode, pool: PoolKind, client: string): Slot | undefined {
    const s = this.#pools.get(node)[pool];
    // Someone lighter waiting goes first; a heavy client waits behind anyone waiting.
    if (s.waiting.some((w) => !w.done && (!s.heavy(w.client) || s.heavy(client)))) return undefined;
    return s.mayTake(client) ? s.take(client) : undefined;
  }

  /**
   * Waits for a slot on any of `nodes` (the first to free one wins), up to limits.queueTimeout.
   * `cancel` registers what ends the wait early (the client leaving).
   */
  wait(nodes: readonly ClusterNode[], pool: PoolKind, client: string, cancel: (stop: () => void) => void): Promise<Admitted> {
    return new Promise((resolve) => {
      let timeout: Timer | undefined;
      const w: Waiter = {
        client,
        since: this.clock.now(),
        pools: nodes.map((n) => this.#pools.get(n)[pool]),
        done: false,
        graceTimer: undefined,
        settle: (result) => {
          if (w.done) {
            if (result.kind === 'slot') result.slot.release();
            return;
          }
          w.done = true;
          if (timeout !== undefined) this.clock.clearTimeout(timeout);
          if (w.graceTimer !== undefined) this.clock.clearTimeout(w.graceTimer);
          resolve(result);
        },
      };
      for (const s of w.pools) s.waiting.push(w);
      timeout = this.clock.setTimeout(() => w.settle({ kind: 'timeout' }), this.opts.queueTimeout);
      timeout.unref?.();
      // A heavy client held back from the headroom looks again once its grace is over.
      w.graceTimer = this.clock.setTimeout(() => {
        w.graceTimer = undefined;
        for (const s of w.pools) if (!w.done) s.dispatch();
      }, HEADROOM_GRACE_MS);
      w.graceTimer.unref?.();
      cancel(() => w.settle({ kind: 'left' }));
      for (const s of w.pools) if (!w.done) s.dispatch();
    });
  }

  /** A node left: the waiter waits on its other candidates, or, with none left, may go elsewhere. */
  #leave(w: Waiter, s: PoolSlots): void {
    w.pools = w.pools.filter((p) => p !== s);
    if (w.pools.length === 0) w.settle({ kind: 'gone' });
  }

  /** Requests waiting for a connection of the node now (either budget), for status and metrics. */
  queued(node: ClusterNode): number {
    const p = this.#pools.peek(node);
    return p === undefined ? 0 : p.fast.waiting.filter((w) => !w.done).length + p.upload.waiting.filter((w) => !w.done).length;
  }
}
