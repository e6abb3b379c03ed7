import type { Config } from '../config/schema.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Clock } from '../util/clock.js';
import type { CheckVerdict } from './verdict.js';

/**
 * Turns active check results and passive observations into each node's health verdict.
 * - Active: the first result decides for a node still `unknown`; after that it takes
 *   `unhealthyAfter` failures in a row to go down (one, when the connection is refused) and
 *   `healthyAfter` passes to come back.
 * - Passive: `passive.consecutiveFailures` failed requests in a row eject the node for a back-off
 *   that doubles on each ejection (up to `maxEjectFor`); passing active checks after the back-off
 *   take it back. Ejections are forgotten once a node has stayed in for `maxEjectFor`.
 */
export class NodeHealth {
  constructor(
    private readonly nodes: NodeSet,
    private readonly cfg: Config['health'],
    private readonly clock: Clock,
  ) {}

  recordCheck(node: ClusterNode, { ok, detail, hard }: CheckVerdict): void {
    const now = this.clock.now();
    node.lastCheck = { at: now, ok, detail };
    if (ok) {
      node.checkStreak = node.checkStreak > 0 ? node.checkStreak + 1 : 1;
      if (node.health === 'unknown') return this.#set(node, 'healthy', `first check passed: ${detail}`);
      if (node.health === 'unhealthy') {
        if (now < node.ejectedUntil) return;
        if (node.checkStreak >= this.cfg.healthyAfter) {
          this.#set(node, 'healthy', `${node.checkStreak} checks passed in a row: ${detail}`);
        }
      }
    } else {
      node.checkStreak = node.checkStreak < 0 ? node.checkStreak - 1 : -1;
      if (node.health === 'unknown') return this.#set(node, 'unhealthy', `first check failed: ${detail}`);
      if (node.health === 'healthy' && hard) return this.#set(node, 'unhealthy', detail);
      if (node.health === 'healthy' && -node.checkStreak >= this.cfg.unhealthyAfter) {
        this.#set(node, 'unhealthy', `${-node.checkStreak} checks failed in a row: ${detail}`);
      }
    }
  }

  /** A request the node answered properly. */
  recordSuccess(node: ClusterNode): void {
    node.consecutiveFailures = 0;
    if (node.ejections > 0 && node.health === 'healthy' && this.clock.now() > node.ejectedUntil + this.cfg.passive.maxEjectFor) {
      node.ejections = 0;
    }
  }

  /** A request the node failed (refused, reset, timed out, 502/503/504). Never a client hanging up, never a 4xx. */
  recordFailure(node: ClusterNode, what: string): void {
    node.consecutiveFailures++;
    if (node.consecutiveFailures < this.cfg.passive.consecutiveFailures || node.health === 'unhealthy') return;
    const now = this.clock.now();
    node.ejections++;
    const backoff = Math.min(this.cfg.passive.ejectFor * 2 ** (node.ejections - 1), this.cfg.passive.maxEjectFor);
    node.ejectedUntil = now + backoff;
    node.checkStreak = 0;
    const failures = node.consecutiveFailures;
    node.consecutiveFailures = 0;
    this.#set(node, 'unhealthy', `${failures} requests failed in a row (last: ${what}); ejected for ${Math.round(backoff / 1000)}s, then back after ${this.cfg.healthyAfter} passing checks`);
  }

  #set(node: ClusterNode, health: 'healthy' | 'unhealthy', why: string): void {
    node.health = health;
    node.healthWhy = why;
    this.nodes.refresh(node);
  }
}
