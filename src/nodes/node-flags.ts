import { describeFinding, type FindingCode, type FindingFacts } from '../findings/catalogue.js';
import type { Logger } from '../log/loggers.js';
import type { Clock } from '../util/clock.js';
import type { FlagSetter } from './conditions.js';
import type { ClusterNode } from './node.js';

/**
 * Raises and clears a node's flags (evidence about the node itself, found by harbor-lb's own
 * probes and checks), each logged once when raised (with the evidence and the fix) and once when
 * cleared. Messages and fixes come from the findings catalogue, the same words doctor prints.
 * Shared by everyone who finds evidence: the token guard, the clock-skew monitor.
 */
export class NodeFlags {
  constructor(
    private readonly nodes: FlagSetter,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  raise<C extends FindingCode>(node: ClusterNode, code: C, facts: FindingFacts[C], evidence: Record<string, unknown>): void {
    if (node.flags.has(code)) return;
    const { message, fix, severity } = describeFinding(code, facts);
    if (!this.nodes.setFlag(node, { code, message, since: new Date(this.clock.now()).toISOString(), fix, severity })) return;
    this.logger.warn({ event: 'node_flag', node: node.name, code, raised: true, severity, evidence, fix }, `${code}: ${message}. Fix: ${fix}`);
  }

  clear(node: ClusterNode, code: FindingCode): void {
    if (!this.nodes.deleteFlag(node, code)) return;
    this.logger.info({ event: 'node_flag', node: node.name, code, raised: false }, `${code} cleared on ${node.name}`);
  }
}
