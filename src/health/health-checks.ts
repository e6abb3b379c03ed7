import type { Config } from '../config/schema.js';
import type { Logger } from '../log/loggers.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Clock } from '../util/clock.js';
import { LogRateLimit } from '../util/log-rate-limit.js';
import type { Random } from '../util/random.js';
import { ActiveHealthChecker, createHttpProbe, type HealthProbe, type HttpProbe } from './active-checker.js';
import type { NodeHealth } from './node-health.js';
import type { CheckVerdict } from './verdict.js';

/**
 * The active health checks and the probe they send, rebuilt when a reload changes the health
 * section. The probe exists with checks off too: a failed request asks for one (a liveness check then).
 */
export class HealthChecks {
  #httpProbe: HttpProbe | undefined;
  #checker: ActiveHealthChecker | undefined;
  #probe!: HealthProbe;
  #running = false;
  /** One `health_check_not_made` line per node per minute: a shortage lasts, and checks run every few seconds. */
  readonly #notMadeLog = new LogRateLimit(60_000);

  constructor(
    private readonly nodes: NodeSet,
    private readonly health: NodeHealth,
    cfg: Config['health'],
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly logger: Logger,
    /** Replaces the HTTP probe (unit tests script answers with it). */
    private readonly customProbe?: HealthProbe,
  ) {
    this.#build(cfg);
  }

  #build(cfg: Config['health']): void {
    this.#httpProbe = this.customProbe === undefined ? createHttpProbe(cfg, this.nodes) : undefined;
    const probe = this.customProbe ?? this.#httpProbe!.probe;
    this.#probe = async (node) => this.#said(node, await probe(node));
    this.#checker = cfg.enabled ? new ActiveHealthChecker(this.nodes, this.health, this.#probe, cfg.interval, this.clock, this.random) : undefined;
  }

  /** The check failed requests ask for: with checks on it is one more check like the periodic ones. */
  readonly recheck = async (node: ClusterNode): Promise<CheckVerdict> => {
    const verdict = await this.#probe(node);
    if (this.#checker !== undefined && this.nodes.has(node)) this.health.recordCheck(node, verdict);
    return verdict;
  };

  /** Says a check harbor-lb could not make: its operator must raise a limit, and the node is not to blame. */
  #said(node: ClusterNode, verdict: CheckVerdict): CheckVerdict {
    if (verdict.notMade) {
      const held = this.#notMadeLog.take(node.name, this.clock.now());
      if (held !== undefined) {
        this.logger.warn(
          { event: 'health_check_not_made', node: node.name, detail: verdict.detail, notLogged: held },
          `${node.name}: ${verdict.detail}; the check counts neither way (harbor-lb's own shortage, not the node's)`,
        );
      }
    }
    return verdict;
  }

  add(node: ClusterNode): void {
    this.#checker?.add(node);
  }

  start(): void {
    this.#running = true;
    this.#checker?.start();
  }

  /** A reload changed the health section: the checks start over with it. */
  configure(cfg: Config['health']): void {
    const old = { checker: this.#checker, httpProbe: this.#httpProbe };
    old.checker?.stop();
    void old.httpProbe?.close();
    this.#build(cfg);
    if (this.#running) this.#checker?.start();
    // Checks turned off: their last verdicts must not hold nodes out (or in) for good.
    if (old.checker && !this.#checker) this.nodes.clearChecks();
  }

  stop(): void {
    this.#checker?.stop();
  }

  async close(): Promise<void> {
    this.stop();
    await this.#httpProbe?.close();
  }
}
