import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Tally } from './stats.js';

/** What one harbor-lb instance wrote during the run, boiled down for the report. */
export interface LogSummary {
  name: string;
  lines: number;
  requests: number;
  /** "route status" → count. */
  byRouteStatus: Record<string, number>;
  /** The routing line's `error` → count. */
  errors: Record<string, number>;
  /** The routing line's `reason` → count. */
  reasons: Record<string, number>;
  /** Events other than routing lines, with when they happened (s since the run started). */
  events: Array<{ t: number; event: string; text: string }>;
  /** connection_rejected reasons, with the lines held back by the rate limit added. */
  rejections: Record<string, number>;
  /** Routing lines that took 5 s or more, by "node route status". */
  slow: Record<string, number>;
  /** Lines logged at warn level or above, by event (or message). */
  warnings: Record<string, number>;
  /** Lines that were not JSON (a crash trace, say), first few. */
  otherLines: string[];
  /** Every `node_flag` line (raised or cleared), for the "client traffic convicted no node" target. */
  flags: Array<{ t: number; node: string; code: string; raised: boolean }>;
  /** Every `node_state` line: a node's state changed (first 2000). */
  states: Array<{ t: number; node: string; from: string; to: string; why: string }>;
  /** `node_suspected` lines by cause (token, registry, failures): client traffic pointed at a node and harbor-lb checked it. */
  suspected: Record<string, number>;
  /** Suspicions held back by the once-a-minute limit of those lines (their `notLogged`), by cause. */
  suspectedNotLogged: Record<string, number>;
  /** The `node_suspected` lines themselves (first 200). */
  suspectedLines: Array<{ t: number; node: string; cause: string; text: string }>;
}

const NOTABLE = new Set(['node_state', 'redis_down', 'redis_up', 'cluster_degraded', 'panic', 'ejection_capped', 'quarantine_fail_open', 'node_flag', 'token_trust_suspect', 'node_suspected', 'start_failed', 'stopping', 'draining_connections']);

export async function summarizeLog(name: string, file: string, startedAt: number): Promise<LogSummary> {
  const byRouteStatus = new Tally();
  const errors = new Tally();
  const reasons = new Tally();
  const rejections = new Tally();
  const warnings = new Tally();
  const slow = new Tally();
  const events: LogSummary['events'] = [];
  const flags: LogSummary['flags'] = [];
  const states: LogSummary['states'] = [];
  const suspected = new Tally();
  const suspectedNotLogged = new Tally();
  const suspectedLines: LogSummary['suspectedLines'] = [];
  const otherLines: string[] = [];
  let lines = 0;
  let requests = 0;
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    lines++;
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      if (otherLines.length < 20) otherLines.push(line.slice(0, 300));
      continue;
    }
    const t = Math.round((Date.parse(String(l.time)) - startedAt) / 100) / 10;
    const event = String(l.event ?? '');
    if (event === 'request') {
      requests++;
      byRouteStatus.add(`${String(l.route)} ${String(l.status)}`);
      if (l.error !== undefined) errors.add(`${String(l.route)} ${String(l.status)} ${String(l.error)}`);
      reasons.add(String(l.reason));
      if (Number(l.durationMs) >= 5000) slow.add(`${String(l.node)} ${String(l.route)} ${String(l.status)}`);
      continue;
    }
    if (event === 'connection_rejected') {
      rejections.add(String(l.reason), 1 + Number(l.notLogged ?? 0));
      continue;
    }
    if (event === 'node_flag') flags.push({ t, node: String(l.node), code: String(l.code), raised: l.raised === true });
    if (event === 'node_state' && states.length < 2000) states.push({ t, node: String(l.node), from: String(l.from), to: String(l.to), why: String(l.why ?? '').slice(0, 200) });
    if (event === 'node_suspected') {
      const cause = String(l.cause);
      suspected.add(cause);
      suspectedNotLogged.add(cause, Number(l.notLogged ?? 0));
      if (suspectedLines.length < 200) suspectedLines.push({ t, node: String(l.node), cause, text: String(l.msg ?? '').slice(0, 300) });
    }
    if (l.level === 'warn' || l.level === 'error' || l.level === 'fatal') warnings.add(event || String(l.msg).slice(0, 80));
    if (NOTABLE.has(event)) events.push({ t, event, text: String(l.msg ?? '').slice(0, 200) });
  }
  return {
    name,
    lines,
    requests,
    byRouteStatus: byRouteStatus.toObject(),
    errors: errors.toObject(),
    reasons: reasons.toObject(),
    events,
    rejections: rejections.toObject(),
    slow: slow.toObject(),
    warnings: warnings.toObject(),
    otherLines,
    flags,
    states,
    suspected: suspected.toObject(),
    suspectedNotLogged: suspectedNotLogged.toObject(),
    suspectedLines,
  };
}
