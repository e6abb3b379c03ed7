import { Pool } from 'undici';
import type { Config } from '../config/schema.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { NodeHealth } from './node-health.js';
import { isLocalShortage, nodeFailure } from '../nodes/node-failure.js';
import { offsetFromDate } from './clock-skew.js';
import { judgeHealth, type CheckVerdict } from './verdict.js';

/** Asks one node how it is; injected so tests can script answers without sockets. */
export type HealthProbe = (node: ClusterNode) => Promise<CheckVerdict>;

const MAX_HEALTH_BODY = 64 * 1024;

/**
 * The HTTP probe: GET health.path over a connection of its own (one per node), so checks are not
 * queued behind traffic when the node's pool is busy, and a slow node fails by the check timeout.
 * With active checks on, the answer is judged as a health check (judgeHealth); with them off the
 * probe still runs when failed requests ask for it, and then only asks whether the node answers
 * at all: any status below 500 within health.timeout (its health path may not even exist).
 * `now` is the wall clock (Date.now): node clocks are compared with it through their Date headers.
 */
export function createHttpProbe(cfg: Config['health'], nodes: NodeSlots, now: () => number = Date.now): HttpProbe {
  const pools = nodes.slot(
    (node) => new Pool(node.origin, { connections: 1, pipelining: 1, connectTimeout: cfg.timeout, connect: node.tls, allowH2: false }),
    (pool) => void pool.destroy(),
  );
  const probe: HealthProbe = async (node) => {
    const pool = pools.get(node);
    const sent = now();
    try {
      const res = await pool.request({
        path: cfg.path,
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'harbor-lb-health' },
        headersTimeout: cfg.timeout,
        bodyTimeout: cfg.timeout,
        signal: AbortSignal.timeout(cfg.timeout),
      });
      const answered = now();
      let body = '';
      for await (const chunk of res.body) {
        body += (chunk as Buffer).toString('utf8');
        if (body.length > MAX_HEALTH_BODY) {
          res.body.destroy();
          break;
        }
      }
      const ct = res.headers['content-type'];
      const verdict = cfg.enabled ? judgeHealth(cfg.path, res.statusCode, Array.isArray(ct) ? ct[0] : ct, body, cfg.requiredComponents, cfg.componentRoutes) : judgeLiveness(res.statusCode);
      const clockOffsetMs = offsetFromDate(typeof res.headers.date === 'string' ? res.headers.date : undefined, sent, answered);
      return clockOffsetMs === undefined ? verdict : { ...verdict, clockOffsetMs };
    } catch (err) {
      const e = err as { code?: string; name?: string; message: string };
      // harbor-lb's own shortage: failing the check would take every node out at once. Not
      // EADDRNOTAVAIL: a check has its own kept-alive connection, so there it rather says the
      // node's address cannot be reached from this host (IPv6 only, on a host without IPv6).
      if (isLocalShortage(err as Error) && e.code !== 'EADDRNOTAVAIL') return { ok: false, notMade: true, detail: `health check not made (${e.code}): ${nodeFailure(err as Error).message}` };
      const why = e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT' ? `no answer within ${cfg.timeout} ms` : (e.code ?? e.message);
      // Only a connection that could not be made says the node does not answer; a node that took
      // the connection and then hung (a frozen registry behind a live core) is left to the
      // unhealthyAfter threshold, so one answered request cannot flap it back in between checks.
      return { ok: false, detail: `health check failed: ${why}`, hard: e.code === 'ECONNREFUSED', reached: nodeFailure(err as Error).notConnected ? false : undefined };
    }
  };
  return {
    probe,
    close: async () => {
      const open = [...pools.values()];
      pools.close();
      await Promise.all(open.map((p) => p.close().catch(() => undefined)));
    },
  };
}

/** With active checks off: the node answers, whatever it answers below 500. */
function judgeLiveness(status: number): CheckVerdict {
  return status < 500 ? { ok: true, detail: `answers (${status})` } : { ok: false, detail: `answered ${status}` };
}

export interface HttpProbe {
  probe: HealthProbe;
  close(): Promise<void>;
}

/** Runs each node's checks on the configured interval, with ±10% jitter so nodes are not hit in lockstep. */
export class ActiveHealthChecker {
  /** The next check of each node; a node that leaves the set takes its timer with it. */
  readonly #next: NodeSlot<{ timer?: Timer }>;
  #stopped = true;

  constructor(
    private readonly nodes: NodeSlots & { readonly all: readonly ClusterNode[] },
    private readonly health: NodeHealth,
    private readonly probe: HealthProbe,
    private readonly interval: number,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.#next = nodes.slot<{ timer?: Timer }>(
      () => ({}),
      (n) => {
        if (n.timer !== undefined) this.clock.clearTimeout(n.timer);
      },
    );
  }

  start(): void {
    this.#stopped = false;
    for (const n of this.nodes.all) void this.#check(n);
  }

  /** A node joined the set (config reload): checked at once, then on the interval. */
  add(node: ClusterNode): void {
    if (!this.#stopped && this.#next.peek(node)?.timer === undefined) void this.#check(node);
  }

  /** Stops for good (a reload builds a new checker with new settings). */
  stop(): void {
    this.#stopped = true;
    this.#next.close();
  }

  async #check(node: ClusterNode): Promise<void> {
    const next = this.#next.get(node);
    next.timer = undefined;
    const verdict = await this.probe(node);
    if (this.#stopped || !this.nodes.all.includes(node)) return;
    this.health.recordCheck(node, verdict);
    const delay = this.interval * (0.9 + 0.2 * this.random());
    next.timer = this.clock.setTimeout(() => void this.#check(node), delay);
    next.timer.unref?.();
  }
}
