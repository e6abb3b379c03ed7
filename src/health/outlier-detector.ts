import type { Config } from '../config/schema.js';
import type { Logger } from '../log/loggers.js';
import type { EjectionSetter, NodeConditions, ReachabilitySetter } from '../nodes/conditions.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import type { Clock } from '../util/clock.js';
import { LogRateLimit } from '../util/log-rate-limit.js';
import { RecheckTrigger } from '../util/recheck-trigger.js';
import { ClusterFailureDetector, type ClusterFailure } from './cluster-failure.js';
import { SLOW_ANSWER_MS } from './answer-watch.js';
import type { CheckVerdict } from './verdict.js';

/** harbor-lb's own check of a node, on demand (the configured health check; a liveness check with checks off). */
export type NodeRecheck = (node: ClusterNode) => Promise<CheckVerdict>;

/** A node that failed requests is checked at once, then at most once per this while failures go on. */
export const RECHECK_SPACING_MS = 1000;
/** One `node_suspected` line per node per minute for failures a check then cleared. */
const CLEARED_LOG_EVERY_MS = 60_000;

/** What one attempt on a node says about that node. A client's doing says nothing and is not reported. */
export type AttemptVerdict =
  /** The node answered, with anything but 502/503/504, on a route class (token, v2, upload, ui, other). */
  | { kind: 'answered'; route: string }
  /** The node answered 502/503/504. */
  | { kind: 'gateway'; status: number; route: string }
  /** The connection could not be made: the node does not answer. */
  | { kind: 'unreachable'; code: string }
  /** Connected, then no answer or a cut one (reset, timed out). */
  | { kind: 'failed'; code: string };

/** The node set as passive detection sees it. */
export type OutlierReportTarget = EjectionSetter &
  ReachabilitySetter &
  NodeSlots & {
    readonly all: readonly ClusterNode[];
    isEjected(node: ClusterNode): boolean;
    available(): readonly ClusterNode[];
    conditionsOf(node: ClusterNode): NodeConditions;
  };

interface Series {
  consecutive: number;
  /** A request to the node waited SLOW_ANSWER_MS without an answer: a check is owed. */
  slow: boolean;
  /** How the last counted failure went (routing error code, or `answered 503`). */
  last: string;
  /** The last counted failure's status and route class, when it was a gateway answer. */
  lastGateway: { status: number; route: string } | undefined;
  ejections: number;
  /** Every ejection since start, for /metrics (`ejections` is the current back-off series only). */
  ejectedTotal: number;
  lastEjectedUntil: number;
  /** The gateway status and route class behind the current ejection, so a cluster-wide failure of that route can lift it. */
  ejectedFor: { status: number; route: string; at: number } | undefined;
  cappedSaid: boolean;
}

/**
 * Passive failure detection, where traffic raises suspicion and harbor-lb's own check convicts
 * (HAProxy's `observe layer7` with `on-error fastinter`): `passive.consecutiveFailures` failed
 * requests in a row make harbor-lb check the node at once (at most once per RECHECK_SPACING_MS),
 * and only a failed check ejects it, for a back-off that doubles with each ejection up to
 * `maxEjectFor` and is forgotten once the node has stayed in that long. Requests a client could
 * make fail never reach here (see attemptVerdict); a refused connection is immediate evidence
 * (reachability), as no client can cause it. A 5xx that every node answers at once is the
 * cluster's: nobody is ejected for it, ejections it caused are lifted, and it is logged once as
 * `cluster_degraded` when it starts and when it ends.
 */
export class OutlierDetector {
  readonly #series: NodeSlot<Series>;
  readonly #cluster: ClusterFailureDetector;
  readonly #rechecks: RecheckTrigger<ClusterNode>;
  readonly #clearedLog = new LogRateLimit(CLEARED_LOG_EVERY_MS);
  /** Checks asked for by traffic since start, and how many found the node failing, for /metrics. */
  readonly recheckCounts = { ok: 0, failed: 0 };
  /** Told when a cluster-wide failure begins or ends, however it ends (request workers must hear at once). */
  readonly #clusterListeners = new Set<() => void>();

  constructor(
    private readonly nodes: OutlierReportTarget,
    private cfg: Config['health']['passive'],
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly recheck: NodeRecheck,
  ) {
    this.#rechecks = new RecheckTrigger(clock, RECHECK_SPACING_MS, (node) => this.#checkSuspect(node));
    // A node that leaves takes its series, its last cluster-failure answers and any owed check with it.
    this.#series = nodes.slot<Series>(
      () => ({ consecutive: 0, slow: false, last: '', lastGateway: undefined, ejections: 0, ejectedTotal: 0, lastEjectedUntil: 0, ejectedFor: undefined, cappedSaid: false }),
      (_, node) => {
        this.#cluster.forget(node);
        this.#rechecks.forget(node);
      },
    );
    this.#cluster = new ClusterFailureDetector(cfg.clusterWindow, clock, {
      started: (f, routable) => {
        this.#clusterStarted(f, routable);
        for (const l of this.#clusterListeners) l();
      },
      ended: (f) => {
        this.logger.info(
          { event: 'cluster_degraded', active: false, status: f.status, route: f.route, durationMs: this.clock.now() - f.since },
          `cluster_degraded over: the nodes no longer all answer ${f.status} on ${f.route} requests (one answers well, one fails alone, or none has failed so for ${Math.round(this.cfg.clusterWindow / 1000)}s)`,
        );
        for (const l of this.#clusterListeners) l();
      },
    });
  }

  /** Calls `listener` each time a cluster-wide failure begins or ends; the function returned stops that. */
  onClusterChange(listener: () => void): () => void {
    this.#clusterListeners.add(listener);
    return () => this.#clusterListeners.delete(listener);
  }

  /** The oldest failure every node shows now on some route class, if any. */
  get clusterFailure(): ClusterFailure | undefined {
    return this.#cluster.current;
  }

  /** Every route class's failure every node shows now, oldest first: answers on those routes are passed on, not retried. */
  get clusterFailures(): ClusterFailure[] {
    return this.#cluster.all();
  }

  /** The failure every node shows now on `route`, if any. */
  clusterFailureOn(route: string): ClusterFailure | undefined {
    return this.#cluster.on(route);
  }

  consecutiveFailures(node: ClusterNode): number {
    return this.#series.peek(node)?.consecutive ?? 0;
  }

  ejections(node: ClusterNode): number {
    return this.#series.peek(node)?.ejections ?? 0;
  }

  /** Passive ejections of the node since start. */
  ejectionsTotal(node: ClusterNode): number {
    return this.#series.peek(node)?.ejectedTotal ?? 0;
  }

  /**
   * Whether a good answer from the node would change anything here: a failure count to clear, an
   * `ejection_capped` warning to re-arm, a back-off series to forget, a recent failure of its to
   * take back or a cluster-wide one to end, an unreachable mark to lift. Otherwise (a healthy
   * cluster, nearly always) it changes nothing, and request workers do not send it
   * (workers/control-link.ts).
   */
  awaitsAnswer(node: ClusterNode): boolean {
    const s = this.#series.peek(node);
    if (s !== undefined && (s.consecutive > 0 || s.ejections > 0 || s.cappedSaid)) return true;
    if (this.#cluster.current !== undefined || this.#cluster.holds(node)) return true;
    return !this.nodes.conditionsOf(node).reachable;
  }

  record(node: ClusterNode, v: AttemptVerdict): void {
    const s = this.#series.get(node);
    if (v.kind === 'answered') {
      s.consecutive = 0;
      s.cappedSaid = false;
      this.#cluster.succeeded(node, v.route);
      this.nodes.setReachable(node, true);
      if (s.ejections > 0 && !this.nodes.isEjected(node) && this.clock.now() > s.lastEjectedUntil + this.cfg.maxEjectFor) s.ejections = 0;
      return;
    }
    if (v.kind === 'unreachable') {
      // No client can make a node refuse connections: out at once (see NodeSet.setReachable).
      this.nodes.setReachable(node, false, v.code);
      return;
    }
    if (v.kind === 'gateway') {
      this.nodes.setReachable(node, true);
      if (this.#cluster.failed(node, v.status, v.route, this.#routable())) return;
    }
    s.consecutive++;
    s.last = v.kind === 'gateway' ? `answered ${v.status}` : v.code;
    s.lastGateway = v.kind === 'gateway' ? { status: v.status, route: v.route } : undefined;
    if (s.consecutive >= this.cfg.consecutiveFailures && !this.nodes.isEjected(node)) this.#rechecks.request(node);
  }

  /**
   * A request to the node has waited SLOW_ANSWER_MS for its answer (see AnswerWatch): no failure
   * is counted, but the node is checked at once. A hung node fails that check and is out long
   * before its first request would time out.
   */
  slowAnswer(node: ClusterNode): void {
    if (this.nodes.isEjected(node)) return;
    this.#series.get(node).slow = true;
    this.#rechecks.request(node);
  }

  /** The check traffic asked for: a failure ejects (within the cap), a pass clears the count. */
  async #checkSuspect(node: ClusterNode): Promise<void> {
    const s = this.#series.peek(node);
    // Gone from the set, answered well since, or out already: nothing to decide.
    if (s === undefined || (s.consecutive < this.cfg.consecutiveFailures && !s.slow) || this.nodes.isEjected(node)) return;
    const failures = s.consecutive;
    const what = s.consecutive > 0 ? `${failures} request(s) failed in a row (last: ${s.last})` : `a request waited ${SLOW_ANSWER_MS / 1000}s for its answer`;
    s.slow = false;
    const verdict = await this.recheck(node);
    // Gone meanwhile, or a check harbor-lb could not make (its own shortage): nothing decided.
    if (this.#series.peek(node) !== s || verdict.notMade) return;
    if (verdict.ok) {
      this.recheckCounts.ok++;
      s.consecutive = 0;
      const held = this.#clearedLog.take(node.name, this.clock.now());
      if (held !== undefined) {
        this.logger.info(
          { event: 'node_suspected', node: node.name, cause: failures > 0 ? 'failures' : 'slow-answer', failures, last: s.last, check: verdict.detail, cleared: true, notLogged: held },
          `${node.name}: ${what}, but harbor-lb's check of it passed (${verdict.detail}): it stays in`,
        );
      }
      return;
    }
    this.recheckCounts.failed++;
    // A failure every node shows on its route is the cluster's, not this node's (an episode on
    // another route, which a client can start, says nothing of this one).
    if (this.nodes.isEjected(node) || (s.lastGateway !== undefined && this.#cluster.on(s.lastGateway.route) !== undefined)) return;
    this.#eject(node, s, `${what} and harbor-lb's check then failed (${verdict.detail})`);
  }

  #eject(node: ClusterNode, s: Series, cause: string): void {
    const now = this.clock.now();
    const backoff = Math.min(this.cfg.ejectFor * 2 ** s.ejections, this.cfg.maxEjectFor);
    const ejected = this.nodes.eject(node, now + backoff, `${cause}; ejected for ${Math.round(backoff / 1000)}s, or until a health check passes`);
    if (!ejected) {
      if (!s.cappedSaid) {
        s.cappedSaid = true;
        this.logger.warn(
          { event: 'ejection_capped', node: node.name, failures: s.consecutive, last: s.last, maxEjectedFraction: this.cfg.maxEjectedFraction },
          `${node.name} failed ${s.consecutive} requests in a row (last: ${s.last}) and its check, but stays in: ejecting it would take out more than ${this.cfg.maxEjectedFraction} of the nodes`,
        );
      }
      return;
    }
    s.ejections++;
    s.ejectedTotal++;
    s.consecutive = 0;
    s.lastEjectedUntil = now + backoff;
    s.ejectedFor = s.lastGateway !== undefined ? { ...s.lastGateway, at: now } : undefined;
  }

  stop(): void {
    this.#cluster.stop();
    this.#rechecks.stop();
  }

  /** New settings from a reload; the current series and ejections keep their course. */
  configure(cfg: Config['health']['passive']): void {
    this.cfg = cfg;
    this.#cluster.window = cfg.clusterWindow;
  }

  /**
   * The nodes whose answers speak for the cluster: those taking traffic now, and those ejected
   * for what they answered (not drained, quarantined or failing their checks: they get no traffic).
   */
  #routable(): ClusterNode[] {
    const taking = this.nodes.available();
    return this.nodes.all.filter((n) => {
      if (taking.includes(n)) return true;
      const c = this.nodes.conditionsOf(n);
      return this.nodes.isEjected(n) && !c.drained && c.quarantine === undefined && c.check !== 'unhealthy';
    });
  }

  #clusterStarted(f: ClusterFailure, routable: readonly ClusterNode[]): void {
    const lifted: string[] = [];
    for (const node of this.nodes.all) {
      const s = this.#series.peek(node);
      if (s === undefined) continue;
      s.consecutive = 0;
      const cause = s.ejectedFor;
      if (cause && cause.status === f.status && cause.route === f.route && f.since - cause.at <= this.cfg.clusterWindow && this.nodes.isEjected(node)) {
        // The failure it was ejected for turned out to be everyone's: the ejection is undone, and so is its step in the back-off.
        s.ejectedFor = undefined;
        s.ejections = Math.max(0, s.ejections - 1);
        lifted.push(node.name);
        this.nodes.endEjection(node, `its ${f.status}s were the cluster's failure, not its own`);
      }
    }
    this.logger.warn(
      { event: 'cluster_degraded', active: true, status: f.status, route: f.route, nodes: routable.map((n) => n.name), lifted },
      `cluster_degraded: every node answers ${f.status} on ${f.route} requests (a shared dependency such as storage or the database is failing); passing those answers on, ejecting nobody`,
    );
  }
}
