import type { Config } from '../config/schema.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeFlags } from '../nodes/node-flags.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';

export const FLAG_CLOCK_SKEW = 'NODE_CLOCK_SKEW';

export interface ClockSkewOptions {
  /** Past this offset a node is flagged (a warning). */
  warnAfter: number;
  /** Past this offset (the registries' leeway) its tokens are refused elsewhere: token requests go to other nodes. */
  tokensAwayAfter: number;
}

/** The thresholds as the config gives them (at start and on every reload). */
export function clockSkewOptions(cfg: Config): ClockSkewOptions {
  return { warnAfter: cfg.health.maxClockSkew, tokensAwayAfter: cfg.token.leeway };
}

/**
 * A node's clock minus ours from the Date header of an answer to a request sent at `sent` and
 * answered at `answered` (our clock, ms): undefined without a readable Date. The header has
 * one-second resolution, so +500 ms centres the error; the round trip's midpoint is when it was written.
 */
export function offsetFromDate(date: string | undefined, sent: number, answered: number): number | undefined {
  const at = date === undefined ? NaN : Date.parse(date);
  return Number.isNaN(at) ? undefined : at + 500 - (sent + answered) / 2;
}

/** Samples kept per node; the median of them is the node's offset, so one odd sample moves nothing. */
const SAMPLES = 5;

/**
 * Each node's clock offset against harbor-lb's, from two kinds of evidence: the `Date` header of
 * its health answers (second resolution) and the `iat` of the tokens it issues. A node whose
 * clock is off issues tokens the other registries reject as "not valid yet" (distribution allows
 * 60 s): it is flagged NODE_CLOCK_SKEW past `warnAfter`, and past `tokensAwayAfter` token
 * requests go to other nodes (it keeps serving everything else). Cleared when it is back in sync.
 */
export class ClockSkew {
  readonly #samples: NodeSlot<number[]>;

  constructor(
    nodes: NodeSlots,
    private readonly flags: NodeFlags,
    private opts: ClockSkewOptions,
  ) {
    this.#samples = nodes.slot<number[]>(() => []);
  }

  /** New thresholds from a config reload; they apply from the next observation. */
  configure(opts: ClockSkewOptions): void {
    this.opts = opts;
  }

  /** `offsetMs`: the node's clock minus harbor-lb's (+: the node is ahead). */
  observe(node: ClusterNode, offsetMs: number, source: 'date' | 'token'): void {
    const list = this.#samples.get(node);
    list.push(offsetMs);
    if (list.length > SAMPLES) list.shift();
    const offset = this.offset(node)!;
    if (Math.abs(offset) > this.opts.warnAfter) {
      const seconds = Math.round(offset / 1000);
      this.flags.raise(node, FLAG_CLOCK_SKEW, { node: node.name, offsetMs: offset, tokensAway: this.tokensAway(node), observer: 'harbor-lb' }, { offsetSeconds: seconds, samples: list.length, source });
    } else if (list.length >= 2) {
      this.flags.clear(node, FLAG_CLOCK_SKEW);
    }
  }

  /** The node's offset (median of recent samples), or undefined before any sample. */
  offset(node: ClusterNode): number | undefined {
    const list = this.#samples.peek(node);
    if (list === undefined || list.length === 0) return undefined;
    const sorted = [...list].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  /** Whether token requests should avoid the node: its tokens would be rejected elsewhere. */
  tokensAway(node: ClusterNode): boolean {
    const offset = this.offset(node);
    return offset !== undefined && Math.abs(offset) > this.opts.tokensAwayAfter;
  }
}
