import type { Logger } from '../log/loggers.js';
import type { Clock } from '../util/clock.js';
import type { ClusterNode } from './node.js';

/**
 * Raises and clears a node's flags (evidence about the node itself), each logged once when raised
 * (with the evidence and the fix) and once when cleared. Shared by everyone who finds evidence:
 * the token guard, the clock-skew monitor.
 */
export class NodeFlags {
  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  raise(node: ClusterNode, code: string, message: string, evidence: Record<string, unknown>, fix: string): void {
    if (node.flags.has(code)) return;
    node.flags.set(code, { code, message, since: new Date(this.clock.now()).toISOString(), fix });
    this.logger.warn({ event: 'node_flag', node: node.name, code, raised: true, evidence, fix }, `${code}: ${message}. Fix: ${fix}`);
  }

  clear(node: ClusterNode, code: string): void {
    if (!node.flags.delete(code)) return;
    this.logger.info({ event: 'node_flag', node: node.name, code, raised: false }, `${code} cleared on ${node.name}`);
  }
}
