import type { Config } from '../config/schema.js';
import type { CheckStatusSetter, EjectionSetter, NodeConditions, ReachabilitySetter } from '../nodes/conditions.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
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

/** What active checks report to: the node set's check, ejection and reachability inputs, and a slot per node. */
export type CheckReportTarget = CheckStatusSetter & EjectionSetter & ReachabilitySetter & NodeSlots & { conditionsOf(node: ClusterNode): NodeConditions };

/** What the checks have said of one node. */
interface NodeChecks {
  last: CheckResult | undefined;
  /** The last CHECK_HISTORY results, oldest first. */
  history: CheckResult[];
  /** > 0: passes in a row; < 0: failures in a row. */
  streak: number;
  /** Results since start (or since it joined), for /metrics; undefined before its first. */
  results: { ok: number; fail: number } | undefined;
}

/**
 * Turns active check results into each node's check verdict: the first result decides for a node
 * still `unknown`; after that it takes `unhealthyAfter` failures in a row to go down (one, when
 * the connection is refused) and `healthyAfter` passes to come back. A passing check also ends a
 * passive ejection (as Envoy's outlier detection does by default): the node answers its checks.
 */
export class NodeHealth {
  readonly #checks: NodeSlot<NodeChecks>;

  constructor(
    private readonly nodes: CheckReportTarget,
    private cfg: Config['health'],
    private readonly clock: Clock,
    /** Gets each answer's clock offset, when the check read one. */
    private readonly skew?: ClockSkew,
  ) {
    this.#checks = nodes.slot<NodeChecks>(() => ({ last: undefined, history: [], streak: 0, results: undefined }));
  }

  /** New thresholds from a config reload; streaks under way keep counting. */
  configure(cfg: Config['health']): void {
    this.cfg = cfg;
  }

  lastCheck(node: ClusterNode): CheckResult | undefined {
    return this.#checks.peek(node)?.last;
  }

  /** The node's recent check results, oldest first (a copy). */
  history(node: ClusterNode): CheckResult[] {
    return [...(this.#checks.peek(node)?.history ?? [])];
  }

  /** Checks that passed and failed on the node since start (or since it joined); undefined before its first. */
  results(node: ClusterNode): { readonly ok: number; readonly fail: number } | undefined {
    return this.#checks.peek(node)?.results;
  }

  recordCheck(node: ClusterNode, { ok, detail, hard, reached, clockOffsetMs, routesOut, notMade }: CheckVerdict): void {
    // A check harbor-lb could not make (its own shortage) is no result: the streak stands.
    if (notMade) return;
    const c = this.#checks.get(node);
    const result = { at: this.clock.now(), ok, detail };
    c.last = result;
    c.history.push(result);
    if (c.history.length > CHECK_HISTORY) c.history.shift();
    c.results ??= { ok: 0, fail: 0 };
    if (ok) c.results.ok++;
    else c.results.fail++;
    this.nodes.setReachable(node, reached !== false, detail);
    if (clockOffsetMs !== undefined) this.skew?.observe(node, clockOffsetMs, 'date');
    const prev = c.streak;
    const check = this.nodes.conditionsOf(node).check;
    if (ok) {
      const streak = prev > 0 ? prev + 1 : 1;
      c.streak = streak;
      this.nodes.endEjection(node, `a health check passed: ${detail}`);
      // Each passing check says which routes its failing components take the node out of, if any.
      this.nodes.setRoutesOut(node, routesOut?.routes ?? [], routesOut?.why ?? '');
      if (check === 'unknown') this.nodes.setCheck(node, 'healthy', `first check passed: ${detail}`);
      else if (check === 'unhealthy' && streak >= this.cfg.healthyAfter) this.nodes.setCheck(node, 'healthy', `${streak} checks passed in a row: ${detail}`);
    } else {
      const streak = prev < 0 ? prev - 1 : -1;
      c.streak = streak;
      if (check === 'unknown') this.nodes.setCheck(node, 'unhealthy', `first check failed: ${detail}`);
      else if (check === 'healthy' && hard) this.nodes.setCheck(node, 'unhealthy', detail);
      else if (check === 'healthy' && -streak >= this.cfg.unhealthyAfter) this.nodes.setCheck(node, 'unhealthy', `${-streak} checks failed in a row: ${detail}`);
    }
  }
}
