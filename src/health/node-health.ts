import type { Config } from '../config/schema.js';
import type { CheckStatusSetter, EjectionSetter, NodeConditions, ReachabilitySetter } from '../nodes/conditions.js';
import type { ClusterNode } from '../nodes/node.js';
import type { Clock } from '../util/clock.js';
import type { ClockSkew } from './clock-skew.js';
import type { CheckVerdict } from './verdict.js';

export interface CheckResult {
  at: number;
  ok: boolean;
  detail: string;
}

/** How many check results each node's history keeps (the status page shows them as a strip). */
export const CHECK_HISTORY = 20;

/** What active checks report to: the node set's check, ejection and reachability inputs. */
export type CheckReportTarget = CheckStatusSetter & EjectionSetter & ReachabilitySetter & { conditionsOf(node: ClusterNode): NodeConditions };

/**
 * Turns active check results into each node's check verdict: the first result decides for a node
 * still `unknown`; after that it takes `unhealthyAfter` failures in a row to go down (one, when
 * the connection is refused) and `healthyAfter` passes to come back. A passing check also ends a
 * passive ejection (as Envoy's outlier detection does by default): the node answers its checks.
 */
export class NodeHealth {
  readonly #last = new Map<ClusterNode, CheckResult>();
  /** The last CHECK_HISTORY results, oldest first. */
  readonly #history = new Map<ClusterNode, CheckResult[]>();
  /** > 0: passes in a row; < 0: failures in a row. */
  readonly #streak = new Map<ClusterNode, number>();
  /** Results per node since start, for /metrics. */
  readonly #results = new Map<ClusterNode, { ok: number; fail: number }>();

  constructor(
    private readonly nodes: CheckReportTarget,
    private cfg: Config['health'],
    private readonly clock: Clock,
    /** Gets each answer's clock offset, when the check read one. */
    private readonly skew?: ClockSkew,
  ) {}

  forget(node: ClusterNode): void {
    this.#last.delete(node);
    this.#history.delete(node);
    this.#streak.delete(node);
    this.#results.delete(node);
  }

  /** New thresholds from a config reload; streaks under way keep counting. */
  configure(cfg: Config['health']): void {
    this.cfg = cfg;
  }

  lastCheck(node: ClusterNode): CheckResult | undefined {
    return this.#last.get(node);
  }

  /** The node's recent check results, oldest first (a copy). */
  history(node: ClusterNode): CheckResult[] {
    return [...(this.#history.get(node) ?? [])];
  }

  /** Checks that passed and failed on the node since start (or since it joined); undefined before its first. */
  results(node: ClusterNode): { readonly ok: number; readonly fail: number } | undefined {
    return this.#results.get(node);
  }

  recordCheck(node: ClusterNode, { ok, detail, hard, reached, clockOffsetMs }: CheckVerdict): void {
    const result = { at: this.clock.now(), ok, detail };
    this.#last.set(node, result);
    const ring = this.#history.get(node) ?? [];
    ring.push(result);
    if (ring.length > CHECK_HISTORY) ring.shift();
    this.#history.set(node, ring);
    let results = this.#results.get(node);
    if (results === undefined) this.#results.set(node, (results = { ok: 0, fail: 0 }));
    if (ok) results.ok++;
    else results.fail++;
    this.nodes.setReachable(node, reached !== false, detail);
    if (clockOffsetMs !== undefined) this.skew?.observe(node, clockOffsetMs, 'date');
    const prev = this.#streak.get(node) ?? 0;
    const check = this.nodes.conditionsOf(node).check;
    if (ok) {
      const streak = prev > 0 ? prev + 1 : 1;
      this.#streak.set(node, streak);
      this.nodes.endEjection(node, `a health check passed: ${detail}`);
      if (check === 'unknown') this.nodes.setCheck(node, 'healthy', `first check passed: ${detail}`);
      else if (check === 'unhealthy' && streak >= this.cfg.healthyAfter) this.nodes.setCheck(node, 'healthy', `${streak} checks passed in a row: ${detail}`);
    } else {
      const streak = prev < 0 ? prev - 1 : -1;
      this.#streak.set(node, streak);
      if (check === 'unknown') this.nodes.setCheck(node, 'unhealthy', `first check failed: ${detail}`);
      else if (check === 'healthy' && hard) this.nodes.setCheck(node, 'unhealthy', detail);
      else if (check === 'healthy' && -streak >= this.cfg.unhealthyAfter) this.nodes.setCheck(node, 'unhealthy', `${-streak} checks failed in a row: ${detail}`);
    }
  }
}
