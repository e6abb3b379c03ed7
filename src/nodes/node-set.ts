import { EventEmitter } from 'node:events';
import type { Config, NodeConfig } from '../config/schema.js';
import type { Clock, Timer } from '../util/clock.js';
import type {
  CheckStatusSetter,
  CheckState,
  DrainSetter,
  EjectionSetter,
  FlagSetter,
  NodeConditions,
  QuarantineSetter,
  ReachabilitySetter,
} from './conditions.js';
import { ClusterNode, type NodeFlag, type NodeRecord, type NodeState, type PoolOptions } from './node.js';
import { NodeSlot, type NodeSlots } from './node-slot.js';
import { nodeTlsOptions } from './node-tls.js';
import type { Route } from '../registry/route.js';

export interface NodeStateChange {
  node: ClusterNode;
  from: NodeState;
  to: NodeState;
  why: string;
}

/** A rule that spans nodes switched on or off; logged once per change. */
/** A node left or came back into some routes (health.componentRoutes); `routes` is what it is out of now. */
export interface NodeRoutesChange {
  node: ClusterNode;
  routes: readonly Route[];
  why: string;
}

export interface ClusterRuleChange {
  rule: 'panic' | 'quarantine_fail_open';
  active: boolean;
  /** The nodes the rule let back in (panic: the nodes now routed over). */
  nodes: string[];
  why: string;
}

/** One node's conditions and flags as the control plane sends them to request workers (workers/). */
export interface MirroredNode {
  name: string;
  url: string;
  check: CheckState;
  checkWhy: string;
  /** How much longer a passive ejection lasts (0: none); a duration, as clocks differ between processes. */
  ejectedForMs: number;
  ejectionWhy: string;
  quarantine: string | undefined;
  drained: boolean;
  reachable: boolean;
  unreachableWhy: string;
  routesOut: Route[];
  routesOutWhy: string;
  flags: NodeFlag[];
}

export interface NodeSetOptions {
  /** At most this fraction of nodes ejected at once; at least one node may always be. */
  maxEjectedFraction: number;
  /** Below this fraction of routable nodes available, every node that answers takes traffic. */
  panicThreshold: number;
  /** A node that did not answer is tried again after this long, checks or not. */
  retryUnreachableAfter: number;
  /**
   * A node removed from the config leaves the set once nothing has been in flight on it, and no
   * request has started there, for this long (its uploads and sessions finish there first).
   */
  removeAfterIdle: number;
}

/**
 * The conditions reported for a node that has left the set (requests still on it finish and
 * report; what they say no longer matters).
 */
const GONE: NodeConditions = Object.freeze({
  check: 'unknown',
  checkWhy: 'no longer in the config',
  ejectedUntil: 0,
  ejectionWhy: '',
  quarantine: undefined,
  drained: true,
  reachable: true,
  routesOut: [],
  routesOutWhy: '',
});

/** How often removed and replaced nodes are looked at to see whether they can go. */
const SWEEP_EVERY = 1000;

/** What NodeSet writes of a node: its record, with the flags map it alone changes. */
type OwnedRecord = NodeRecord & { flags: Map<string, NodeFlag> };

interface Conditions {
  check: CheckState;
  checkWhy: string;
  ejectedUntil: number;
  ejectionWhy: string;
  ejectionTimer: Timer | undefined;
  quarantine: string | undefined;
  drained: boolean;
  reachable: boolean;
  unreachableWhy: string;
  unreachableTimer: Timer | undefined;
  routesOut: readonly Route[];
  routesOutWhy: string;
  /** Removed from the config by a reload: drains, then leaves the set once idle. */
  removed: { requests: number; quietSince: number } | undefined;
}

/**
 * All configured nodes and the one owner of their state. Reporters (active checks, passive
 * detection, the token guard, operators) set named conditions through narrow interfaces; the
 * state of every node is derived here from them, and the rules that span nodes are applied on
 * every change:
 * - drain wins over quarantine, which wins over health (a failed check or a passive ejection);
 * - a trust quarantine is in force only while another node that is neither quarantined nor
 *   drained can serve; otherwise it fails open (the cluster keeps working on the odd node);
 * - passive ejections are capped: at most `maxEjectedFraction` of the nodes (at least one);
 * - panic: with fewer than `panicThreshold` of the routable nodes available (or none), every
 *   routable node that answers takes traffic, so the proxy never refuses what a node could serve.
 */
export class NodeSet
  extends EventEmitter<{ state: [NodeStateChange]; rule: [ClusterRuleChange]; routes: [NodeRoutesChange]; flag: [{ node: ClusterNode; code: string; raised: boolean }]; added: [ClusterNode]; removed: [ClusterNode]; reachability: [{ node: ClusterNode; reachable: boolean }] }>
  implements CheckStatusSetter, EjectionSetter, ReachabilitySetter, QuarantineSetter, DrainSetter, FlagSetter, NodeSlots
{
  #all: readonly ClusterNode[];
  readonly #byName = new Map<string, ClusterNode>();
  readonly #cond = new Map<ClusterNode, Conditions>();
  /** Nodes out of some routes only: none, and availableFor() is available(). */
  #partlyOut = 0;
  readonly #records = new Map<ClusterNode, OwnedRecord>();
  /** Components' per-node data, dropped when a node leaves the set. */
  #slots: Array<NodeSlot<unknown>> = [];
  readonly #poolOpts: PoolOptions;
  /** Nodes replaced by a reload (a new URL under the same name): closed once their requests finish. */
  readonly #retired = new Set<ClusterNode>();
  #sweepTimer: Timer | undefined;
  #opts: NodeSetOptions;
  #available: readonly ClusterNode[] | undefined;
  #panic = false;
  #failOpen = false;
  #closed = false;

  constructor(
    cfg: Config,
    private readonly clock: Clock,
    opts: NodeSetOptions = nodeSetOptions(cfg),
  ) {
    super();
    this.#opts = opts;
    this.#poolOpts = {
      connectTimeout: cfg.proxy.connectTimeout,
      headersTimeout: cfg.proxy.headersTimeout,
      idleTimeout: cfg.proxy.idleTimeout,
      maxConnections: cfg.proxy.maxConnectionsPerNode,
      maxUploadConnections: cfg.proxy.maxUploadConnectionsPerNode,
    };
    this.#all = cfg.nodes.map((n) => this.#create(n));
  }

  /** Every node in the set, including removed ones still draining; a new array after each change. */
  get all(): readonly ClusterNode[] {
    return this.#all;
  }

  /** The rules' settings (a reload may change them); applied at once. */
  configure(opts: NodeSetOptions): void {
    this.#opts = opts;
    this.#evaluate();
  }

  /** Whether a reload removed the node (it drains until idle, then leaves the set). */
  isRemoved(node: ClusterNode): boolean {
    return this.#cond.get(node)?.removed !== undefined;
  }

  // ---- membership (config reload) ----------------------------------------------------------

  /**
   * Adds a node from the config, or updates the one of that name: a new weight applies at once; a
   * new URL or CA makes a new node under the name (pins follow the name), while requests already
   * on the old one finish there before its connections close. A removed node put back is kept.
   */
  upsert(cfg: NodeConfig): ClusterNode {
    const old = this.#byName.get(cfg.name);
    if (old !== undefined && old.url === cfg.url && sameCa(old, cfg)) {
      this.#records.get(old)!.weight = cfg.weight;
      const c = this.#c(old);
      if (c.removed !== undefined) {
        c.removed = undefined;
        this.#evaluate({ node: old, text: 'put back in the config' });
      }
      return old;
    }
    const carried = old === undefined ? undefined : this.#c(old);
    const node = this.#create(cfg);
    if (old === undefined) this.#all = [...this.#all, node];
    else {
      // What an operator or a reload decided about the name holds for its new address too.
      const c = this.#c(node);
      c.drained = carried!.drained;
      this.#all = this.#all.map((n) => (n === old ? node : n));
      this.#dropConditions(old);
      this.#retired.add(old);
      this.#armSweep();
    }
    this.emit('added', node);
    this.#evaluate();
    return node;
  }

  /** Whether the node is in the set (a replaced or departed node is not, even while requests on it finish). */
  has(node: ClusterNode): boolean {
    return this.#cond.has(node);
  }

  /** Every address requests may still be on: the set's nodes and replaced ones not yet closed. */
  urls(): string[] {
    return [...this.#all, ...this.#retired].map((n) => n.url);
  }

  /** Active checks were turned off (config reload): their last verdicts no longer speak for anyone. */
  clearChecks(): void {
    for (const [node, c] of this.#cond) {
      c.check = 'unknown';
      c.checkWhy = 'active checks are off';
      // Routes out came from checks too: with no check to end them, they must not outlive them.
      this.setRoutesOut(node, [], '');
    }
    this.#evaluate();
  }

  /**
   * Takes a node out of rotation for good: it drains (pinned uploads and sessions finish there,
   * nothing new goes to it) and leaves the set once idle for `removeAfterIdle`.
   */
  remove(name: string): void {
    const node = this.#byName.get(name);
    if (node === undefined) return;
    const c = this.#c(node);
    if (c.removed !== undefined) return;
    c.removed = { requests: node.traffic.requests, quietSince: this.clock.now() };
    this.#evaluate();
    this.#armSweep();
  }

  #create(cfg: NodeConfig): ClusterNode {
    const conditions: Conditions = {
      check: 'unknown',
      checkWhy: 'not checked yet',
      ejectedUntil: 0,
      ejectionWhy: '',
      ejectionTimer: undefined,
      quarantine: undefined,
      drained: false,
      reachable: true,
      unreachableWhy: '',
      unreachableTimer: undefined,
      routesOut: [],
      routesOutWhy: '',
      removed: undefined,
    };
    const record: OwnedRecord = { state: 'unknown', stateSince: this.clock.now(), stateWhy: 'not checked yet', weight: cfg.weight, conditions, flags: new Map() };
    const node = new ClusterNode(cfg, this.#poolOpts, record);
    this.#byName.set(node.name, node);
    this.#cond.set(node, conditions);
    this.#records.set(node, record);
    return node;
  }

  // ---- components' per-node data ------------------------------------------------------------

  slot<T>(init: (node: ClusterNode) => T, dispose?: (value: T, node: ClusterNode) => void): NodeSlot<T> {
    const slot = new NodeSlot((node) => this.#cond.has(node), init, dispose);
    this.#slots = [...this.#slots.filter((s) => !s.closed), slot as NodeSlot<unknown>];
    return slot;
  }

  // ---- flags (findings about a node, raised through NodeFlags) ------------------------------

  setFlag(node: ClusterNode, flag: NodeFlag): boolean {
    const r = this.#records.get(node);
    if (r === undefined || r.flags.has(flag.code)) return false;
    r.flags.set(flag.code, flag);
    this.emit('flag', { node, code: flag.code, raised: true });
    return true;
  }

  deleteFlag(node: ClusterNode, code: string): boolean {
    const had = this.#records.get(node)?.flags.delete(code) ?? false;
    if (had) this.emit('flag', { node, code, raised: false });
    return had;
  }

  /** Drops a node's conditions and timers; it is closed (and 'removed' said) once its requests are done. */
  #dropConditions(node: ClusterNode): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.ejectionTimer) this.clock.clearTimeout(c.ejectionTimer);
    if (c.unreachableTimer) this.clock.clearTimeout(c.unreachableTimer);
    if (c.routesOut.length > 0) this.#partlyOut--;
    this.#cond.delete(node);
    if (this.#byName.get(node.name) === node) this.#byName.delete(node.name);
  }

  #armSweep(): void {
    if (this.#sweepTimer !== undefined || this.#closed) return;
    this.#sweepTimer = this.clock.setTimeout(() => {
      this.#sweepTimer = undefined;
      if (this.#closed) return;
      this.#sweep();
    }, SWEEP_EVERY);
    this.#sweepTimer.unref?.();
  }

  /** Lets removed nodes go once idle, and closes replaced nodes once their last request is done. */
  #sweep(): void {
    const now = this.clock.now();
    let pending = false;
    let dropped = false;
    for (const node of this.#all) {
      const removed = this.#cond.get(node)?.removed;
      if (removed === undefined) continue;
      if (node.traffic.inflight > 0 || node.traffic.requests !== removed.requests) {
        removed.requests = node.traffic.requests;
        removed.quietSince = now;
      }
      if (node.traffic.inflight === 0 && now - removed.quietSince >= this.#opts.removeAfterIdle) {
        this.#dropConditions(node);
        this.#retired.add(node);
        dropped = true;
      } else pending = true;
    }
    if (dropped) {
      this.#all = this.#all.filter((n) => this.#cond.has(n));
      this.#evaluate();
    }
    for (const node of [...this.#retired]) {
      if (node.traffic.inflight > 0) {
        pending = true;
        continue;
      }
      this.#retired.delete(node);
      this.#records.delete(node);
      void node.close();
      // Once nothing can report on the node any more, every component's data about it goes.
      for (const slot of this.#slots) slot.drop(node);
      this.emit('removed', node);
    }
    if (pending) this.#armSweep();
  }

  /** The node of that name; a removed node stays until it has left the set. */
  get(name: string): ClusterNode | undefined {
    return this.#byName.get(name);
  }

  /** The conditions behind a node's state, for status pages and for reporters' own rules. */
  conditionsOf(node: ClusterNode): NodeConditions {
    return this.#cond.get(node) ?? GONE;
  }

  isEjected(node: ClusterNode): boolean {
    return (this.#cond.get(node)?.ejectedUntil ?? 0) > this.clock.now();
  }

  /** Whether some node may take traffic and is known to answer (the admin API's readiness). */
  ready(): boolean {
    return this.available().some((n) => this.#c(n).reachable);
  }

  /** Whether panic routing is on (fewer nodes available than the threshold). */
  get panic(): boolean {
    this.available();
    return this.#panic;
  }

  /**
   * Nodes that may take new traffic: the healthy ones (or, before any node was found healthy, the
   * unchecked ones). In panic, every routable node that answers (every routable node when none is
   * known to answer): a node the checks gave up on may still serve what is asked of it.
   */
  available(): readonly ClusterNode[] {
    if (this.#available !== undefined) return this.#available;
    const healthy = this.all.filter((n) => n.state === 'healthy');
    const normal = healthy.length > 0 ? healthy : this.all.filter((n) => n.state === 'unknown');
    const routable = this.all.filter((n) => n.state !== 'draining' && n.state !== 'quarantined');
    const panic = routable.length > 0 && (normal.length === 0 || normal.length < this.#opts.panicThreshold * routable.length);
    let chosen = normal;
    if (panic) {
      const answering = routable.filter((n) => this.#c(n).reachable);
      chosen = answering.length > 0 ? answering : routable;
    }
    this.#available = chosen;
    if (panic !== this.#panic) {
      this.#panic = panic;
      this.emit('rule', {
        rule: 'panic',
        active: panic,
        nodes: chosen.map((n) => n.name),
        why: panic
          ? `${normal.length} of ${routable.length} routable nodes available (threshold ${this.#opts.panicThreshold}): routing over every node that answers`
          : `${normal.length} of ${routable.length} routable nodes available again`,
      });
    }
    return chosen;
  }

  /**
   * The nodes that may take a request of this route: available() less those out of the route
   * (health.componentRoutes). When that leaves none, available() itself: a node whose registry
   * says it is down may still answer, and refusing outright would be worse than trying.
   */
  availableFor(route: Route): readonly ClusterNode[] {
    const all = this.available();
    if (this.#partlyOut === 0) return all;
    const some = all.filter((n) => !this.#c(n).routesOut.includes(route));
    return some.length > 0 ? some : all;
  }

  // ---- reporters' inputs -------------------------------------------------------------------

  /** Active checks: the routes a node's failing components take it out of (empty: none), and why. */
  setRoutesOut(node: ClusterNode, routes: readonly Route[], why: string): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    const same = c.routesOut.length === routes.length && routes.every((r) => c.routesOut.includes(r));
    if (same) return;
    this.#partlyOut += (routes.length > 0 ? 1 : 0) - (c.routesOut.length > 0 ? 1 : 0);
    c.routesOut = [...routes];
    c.routesOutWhy = routes.length > 0 ? why : '';
    this.emit('routes', { node, routes: c.routesOut, why: c.routesOutWhy });
  }

  setCheck(node: ClusterNode, verdict: 'healthy' | 'unhealthy', why: string): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.check === verdict && c.checkWhy === why) return;
    c.check = verdict;
    c.checkWhy = why;
    this.#evaluate();
  }

  eject(node: ClusterNode, until: number, why: string): boolean {
    const now = this.clock.now();
    const c = this.#cond.get(node);
    // A removed node takes no new traffic anyway; its pinned requests failing must not use up the cap.
    if (c === undefined || c.removed !== undefined) return false;
    if (c.ejectedUntil <= now) {
      const ejected = this.all.filter((n) => n !== node && this.#c(n).removed === undefined && this.#c(n).ejectedUntil > now).length;
      if (ejected >= this.maxEjected()) return false;
    }
    c.ejectedUntil = until;
    c.ejectionWhy = why;
    this.#armEjectionTimer(c, until - now);
    this.#evaluate();
    return true;
  }

  /** An ejection expires on its own, active checks or not; a timer that fires early is armed again for the rest. */
  #armEjectionTimer(c: Conditions, ms: number): void {
    if (c.ejectionTimer) this.clock.clearTimeout(c.ejectionTimer);
    c.ejectionTimer = this.clock.setTimeout(() => {
      c.ejectionTimer = undefined;
      if (this.#closed) return;
      const left = c.ejectedUntil - this.clock.now();
      if (left > 0) this.#armEjectionTimer(c, left);
      else this.#evaluate();
    }, Math.max(1, ms));
    c.ejectionTimer.unref?.();
  }

  endEjection(node: ClusterNode, why: string): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.ejectedUntil === 0) return;
    c.ejectedUntil = 0;
    c.ejectionWhy = why;
    if (c.ejectionTimer) this.clock.clearTimeout(c.ejectionTimer);
    c.ejectionTimer = undefined;
    this.#evaluate({ node, text: why });
  }

  /** How many nodes may be ejected at once (nodes removed by a reload do not count). */
  maxEjected(): number {
    const members = this.#all.filter((n) => this.#c(n).removed === undefined).length;
    return Math.max(1, Math.floor(members * this.#opts.maxEjectedFraction + 1e-9));
  }

  /**
   * A node that does not answer at all is out (whatever the ejection cap: it cannot serve
   * anything), and is tried again after `retryUnreachableAfter` even with checks off.
   */
  setReachable(node: ClusterNode, reachable: boolean, why = 'the connection failed'): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.unreachableTimer) this.clock.clearTimeout(c.unreachableTimer);
    c.unreachableTimer = undefined;
    if (!reachable) {
      c.unreachableWhy = why;
      c.unreachableTimer = this.clock.setTimeout(() => {
        c.unreachableTimer = undefined;
        if (!this.#closed) this.setReachable(node, true, 'retry');
      }, this.#opts.retryUnreachableAfter);
      c.unreachableTimer.unref?.();
    }
    if (c.reachable === reachable) return;
    c.reachable = reachable;
    this.#evaluate(reachable ? { node, text: why === 'retry' ? 'trying it again' : 'it answers again' } : undefined);
    // Said even when the node's state stays as it was (its check fails, it is ejected): panic
    // routing goes over the nodes that answer, so request workers must hear of it at once.
    this.emit('reachability', { node, reachable });
  }

  quarantine(node: ClusterNode, why: string): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.quarantine === why) return;
    c.quarantine = why;
    this.#evaluate();
  }

  release(node: ClusterNode): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.quarantine === undefined) return;
    c.quarantine = undefined;
    this.#evaluate({ node, text: 'trust restored' });
  }

  setDrained(node: ClusterNode, drained: boolean): void {
    const c = this.#cond.get(node);
    if (c === undefined) return;
    if (c.drained === drained) return;
    c.drained = drained;
    this.#evaluate();
  }

  /**
   * A request worker's copy of the set follows the control plane's (workers/): the conditions it
   * derived are taken as they are, with no timers of its own (the control plane sends the end of
   * an ejection or of a retry wait as one more change), and the state re-derived from them here.
   */
  follow(mirrored: readonly MirroredNode[]): void {
    const now = this.clock.now();
    for (const m of mirrored) {
      const node = this.#byName.get(m.name);
      if (node === undefined || node.url !== m.url) continue;
      const c = this.#c(node);
      c.check = m.check;
      c.checkWhy = m.checkWhy;
      c.ejectedUntil = m.ejectedForMs > 0 ? now + m.ejectedForMs : 0;
      c.ejectionWhy = m.ejectionWhy;
      c.quarantine = m.quarantine;
      c.drained = m.drained;
      c.reachable = m.reachable;
      c.unreachableWhy = m.unreachableWhy;
      this.setRoutesOut(node, m.routesOut, m.routesOutWhy);
      const flags = this.#records.get(node)!.flags;
      for (const code of [...flags.keys()]) if (!m.flags.some((f) => f.code === code)) this.deleteFlag(node, code);
      for (const f of m.flags) this.setFlag(node, f);
    }
    this.#evaluate();
  }

  /** What a worker's copy needs of each node (see follow()). */
  mirror(): MirroredNode[] {
    const now = this.clock.now();
    return this.#all.map((node) => {
      const c = this.#c(node);
      return {
        name: node.name,
        url: node.url,
        check: c.check,
        checkWhy: c.checkWhy,
        ejectedForMs: Math.max(0, c.ejectedUntil - now),
        ejectionWhy: c.ejectionWhy,
        quarantine: c.quarantine,
        drained: c.drained,
        reachable: c.reachable,
        unreachableWhy: c.unreachableWhy,
        routesOut: [...c.routesOut],
        routesOutWhy: c.routesOutWhy,
        flags: [...node.flags.values()],
      };
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweepTimer) this.clock.clearTimeout(this.#sweepTimer);
    for (const c of this.#cond.values()) {
      if (c.ejectionTimer) this.clock.clearTimeout(c.ejectionTimer);
      if (c.unreachableTimer) this.clock.clearTimeout(c.unreachableTimer);
    }
    for (const slot of this.#slots) slot.clear();
    await Promise.all([...this.#all, ...this.#retired].map((n) => n.close()));
  }

  // ---- derivation ------------------------------------------------------------------------------

  #c(node: ClusterNode): Conditions {
    const c = this.#cond.get(node);
    if (c === undefined) throw new Error(`node ${node.name} is not in this set`);
    return c;
  }

  /** A node that could take traffic if nothing but its own health mattered. */
  #canServe(node: ClusterNode, now: number): boolean {
    const c = this.#c(node);
    return !c.drained && c.removed === undefined && c.quarantine === undefined && c.check !== 'unhealthy' && c.ejectedUntil <= now && c.reachable;
  }

  /** Re-derives every node's state: a change to one node can change what the rules allow for another. */
  #evaluate(about?: { node: ClusterNode; text: string }): void {
    const now = this.clock.now();
    const servers = this.all.filter((n) => this.#canServe(n, now));
    const failedOpen: string[] = [];
    for (const node of this.all) {
      const c = this.#c(node);
      let to: NodeState;
      let why: string;
      const quarantineHolds = c.quarantine !== undefined && servers.some((m) => m !== node);
      if (c.quarantine !== undefined && !quarantineHolds && !c.drained && c.removed === undefined) failedOpen.push(node.name);
      if (c.removed !== undefined) {
        to = 'draining';
        why = `removed from the config: no new clients; in-flight requests, pinned uploads and sessions finish, then it leaves once idle for ${Math.round(this.#opts.removeAfterIdle / 1000)}s`;
      } else if (c.drained) {
        to = 'draining';
        why = 'drained by an operator: no new clients, in-flight requests finish';
      } else if (quarantineHolds) {
        to = 'quarantined';
        why = c.quarantine!;
      } else if (c.check === 'unhealthy') {
        to = 'unhealthy';
        why = c.checkWhy;
      } else if (c.ejectedUntil > now) {
        to = 'unhealthy';
        why = c.ejectionWhy;
      } else if (!c.reachable) {
        to = 'unhealthy';
        why = `does not answer: ${c.unreachableWhy}; tried again in ${Math.round(this.#opts.retryUnreachableAfter / 1000)}s or when a check passes`;
      } else {
        to = c.check;
        // Back from an ejection or from not answering: say what brought it back, not an old check's reason.
        const hint = about?.node === node ? about.text : undefined;
        why = node.state === 'unhealthy' && (hint !== undefined || c.check === 'unknown') ? `back in: ${hint ?? 'ejection back-off elapsed'}` : c.checkWhy;
        if (c.quarantine !== undefined) why = `quarantine failed open (${c.quarantine}): no other node can serve`;
      }
      this.#setState(node, to, why, now);
    }
    const failOpen = failedOpen.length > 0;
    if (failOpen !== this.#failOpen) {
      this.#failOpen = failOpen;
      this.emit('rule', {
        rule: 'quarantine_fail_open',
        active: failOpen,
        nodes: failedOpen,
        why: failOpen
          ? `no node outside quarantine can serve: ${failedOpen.join(', ')} take traffic despite their flags`
          : 'a node outside quarantine can serve again: quarantine is back in force',
      });
    }
    // Panic is re-judged against the new conditions (and logged) now, not on the next request.
    this.#available = undefined;
    this.available();
  }

  #setState(node: ClusterNode, to: NodeState, why: string, now: number): void {
    const r = this.#records.get(node)!;
    const from = r.state;
    r.stateWhy = why;
    if (from === to) return;
    r.state = to;
    r.stateSince = now;
    this.#available = undefined;
    this.emit('state', { node, from, to, why });
  }
}

/** The rules' settings as the config gives them. */
export function nodeSetOptions(cfg: Config): NodeSetOptions {
  return {
    maxEjectedFraction: cfg.health.passive.maxEjectedFraction,
    panicThreshold: cfg.balance.panicThreshold,
    retryUnreachableAfter: cfg.health.passive.ejectFor,
    removeAfterIdle: Math.min(cfg.sticky.ttl.upload, 300_000),
  };
}

/** Whether a node's private CA is the one `cfg` names, path and content (a CA renewed in place is a change). */
function sameCa(node: ClusterNode, cfg: NodeConfig): boolean {
  if (node.ca !== cfg.ca) return false;
  if (cfg.ca === undefined) return true;
  try {
    return nodeTlsOptions(cfg)!.ca.equals(node.tls!.ca);
  } catch {
    return false;
  }
}
