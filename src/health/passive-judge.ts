import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { EjectionSetter, NodeConditions, ReachabilitySetter } from '../nodes/conditions.js';
import type { ClusterNode } from '../nodes/node.js';
import type { Clock } from '../util/clock.js';
import { ClusterFailureDetector, type ClusterFailure } from './cluster-failure.js';

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
export type PassiveReportTarget = EjectionSetter &
  ReachabilitySetter & {
    readonly all: readonly ClusterNode[];
    isEjected(node: ClusterNode): boolean;
    available(): readonly ClusterNode[];
    conditionsOf(node: ClusterNode): NodeConditions;
  };

interface Series {
  consecutive: number;
  ejections: number;
  /** Every ejection since start, for /metrics (`ejections` is the current back-off series only). */
  ejectedTotal: number;
  lastEjectedUntil: number;
  /** The gateway status behind the current ejection, so a cluster-wide failure can lift it. */
  ejectedFor: { status: number; at: number } | undefined;
  cappedSaid: boolean;
}

/**
 * Passive failure detection (Envoy's consecutive-failure outlier detection, Caddy's fail_duration):
 * `passive.consecutiveFailures` failed requests in a row eject a node for a back-off that doubles
 * with each ejection up to `maxEjectFor`, and is forgotten once the node has stayed in that long.
 * A 5xx that every node answers at once is the cluster's: nobody is ejected for it, ejections it
 * caused are lifted, and it is logged once as `cluster_degraded` when it starts and when it ends.
 */
export class PassiveJudge {
  readonly #series = new Map<ClusterNode, Series>();
  readonly #cluster: ClusterFailureDetector;

  constructor(
    private readonly nodes: PassiveReportTarget,
    private cfg: Config['health']['passive'],
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.#cluster = new ClusterFailureDetector(cfg.clusterWindow, clock, {
      started: (f, routable) => this.#clusterStarted(f, routable),
      ended: (f) =>
        this.logger.info(
          { event: 'cluster_degraded', active: false, status: f.status, durationMs: this.clock.now() - f.since },
          `cluster_degraded over: the nodes no longer all answer ${f.status} (one answers well, one fails alone, or none has failed so for ${Math.round(this.cfg.clusterWindow / 1000)}s)`,
        ),
    });
  }

  /** The failure every node shows now, if any: its answers are passed on, not retried. */
  get clusterFailure(): ClusterFailure | undefined {
    return this.#cluster.current;
  }

  consecutiveFailures(node: ClusterNode): number {
    return this.#s(node).consecutive;
  }

  ejections(node: ClusterNode): number {
    return this.#s(node).ejections;
  }

  /** Passive ejections of the node since start. */
  ejectionsTotal(node: ClusterNode): number {
    return this.#series.get(node)?.ejectedTotal ?? 0;
  }

  record(node: ClusterNode, v: AttemptVerdict): void {
    const s = this.#s(node);
    if (v.kind === 'answered') {
      s.consecutive = 0;
      s.cappedSaid = false;
      this.#cluster.succeeded(node, v.route);
      this.nodes.setReachable(node, true);
      if (s.ejections > 0 && !this.nodes.isEjected(node) && this.clock.now() > s.lastEjectedUntil + this.cfg.maxEjectFor) s.ejections = 0;
      return;
    }
    if (v.kind === 'gateway') {
      this.nodes.setReachable(node, true);
      if (this.#cluster.failed(node, v.status, v.route, this.#routable())) return;
    } else if (v.kind === 'unreachable') {
      this.nodes.setReachable(node, false, v.code);
    }
    s.consecutive++;
    if (s.consecutive < this.cfg.consecutiveFailures || this.nodes.isEjected(node)) return;
    const what = v.kind === 'gateway' ? `answered ${v.status}` : v.code;
    const now = this.clock.now();
    const backoff = Math.min(this.cfg.ejectFor * 2 ** s.ejections, this.cfg.maxEjectFor);
    const failures = s.consecutive;
    const ejected = this.nodes.eject(
      node,
      now + backoff,
      `${failures} requests failed in a row (last: ${what}); ejected for ${Math.round(backoff / 1000)}s, or until a health check passes`,
    );
    if (!ejected) {
      if (!s.cappedSaid) {
        s.cappedSaid = true;
        this.logger.warn(
          { event: 'ejection_capped', node: node.name, failures, last: what, maxEjectedFraction: this.cfg.maxEjectedFraction },
          `${node.name} failed ${failures} requests in a row (last: ${what}) but stays in: ejecting it would take out more than ${this.cfg.maxEjectedFraction} of the nodes`,
        );
      }
      return;
    }
    s.ejections++;
    s.ejectedTotal++;
    s.consecutive = 0;
    s.lastEjectedUntil = now + backoff;
    s.ejectedFor = v.kind === 'gateway' ? { status: v.status, at: now } : undefined;
  }

  stop(): void {
    this.#cluster.stop();
  }

  /** A node left the set (config reload): its series goes with it. */
  forget(node: ClusterNode): void {
    this.#series.delete(node);
    this.#cluster.forget(node);
  }

  /** New settings from a reload; the current series and ejections keep their course. */
  configure(cfg: Config['health']['passive']): void {
    this.cfg = cfg;
    this.#cluster.window = cfg.clusterWindow;
  }

  #s(node: ClusterNode): Series {
    let s = this.#series.get(node);
    if (s === undefined) this.#series.set(node, (s = { consecutive: 0, ejections: 0, ejectedTotal: 0, lastEjectedUntil: 0, ejectedFor: undefined, cappedSaid: false }));
    return s;
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
    for (const [node, s] of this.#series) {
      s.consecutive = 0;
      const cause = s.ejectedFor;
      if (cause && cause.status === f.status && f.since - cause.at <= this.cfg.clusterWindow && this.nodes.isEjected(node)) {
        // The failure it was ejected for turned out to be everyone's: the ejection is undone, and so is its step in the back-off.
        s.ejectedFor = undefined;
        s.ejections = Math.max(0, s.ejections - 1);
        lifted.push(node.name);
        this.nodes.endEjection(node, `its ${f.status}s were the cluster's failure, not its own`);
      }
    }
    this.logger.warn(
      { event: 'cluster_degraded', active: true, status: f.status, nodes: routable.map((n) => n.name), lifted },
      `cluster_degraded: every node answers ${f.status} (a shared dependency such as storage or the database is failing); passing the answers on, ejecting nobody`,
    );
  }
}
