import type { ClockSkew } from '../health/clock-skew.js';
import type { PassiveJudge } from '../health/passive-judge.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { TokenGuard } from '../token/token-guard.js';

const STATES = ['healthy', 'unhealthy', 'quarantined', 'draining', 'unknown'] as const;

/** Prometheus text exposition, read from the same per-node counters routing updates. */
export function renderMetrics(nodes: NodeSet, judge: PassiveJudge, guard?: TokenGuard, rejections?: ReadonlyMap<string, number>, skew?: ClockSkew): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string, samples: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(labels === '' ? `${name} ${value}` : `${name}{${labels}} ${value}`);
  };
  const label = (name: string) => `node="${name.replace(/["\\\n]/g, '_')}"`;
  family('harbor_lb_node_requests_total', 'counter', 'Attempts forwarded to the node.', nodes.all.map((n) => [label(n.name), n.requests]));
  family('harbor_lb_node_failures_total', 'counter', 'Attempts the node failed (refused, reset, timed out, 502/503/504).', nodes.all.map((n) => [label(n.name), n.failures]));
  family('harbor_lb_node_inflight', 'gauge', 'Requests on the node now.', nodes.all.map((n) => [label(n.name), n.inflight]));
  family('harbor_lb_node_ejections', 'gauge', 'Passive ejections in the current back-off series.', nodes.all.map((n) => [label(n.name), judge.ejections(n)]));
  family(
    'harbor_lb_node_state',
    'gauge',
    '1 for the state the node is in.',
    nodes.all.flatMap((n) => STATES.map((s) => [`${label(n.name)},state="${s}"`, n.state === s ? 1 : 0] as [string, number])),
  );
  family('harbor_lb_panic', 'gauge', '1 while panic routing is on (too few nodes available: every node that answers takes traffic).', [['', nodes.panic ? 1 : 0]]);
  family('harbor_lb_cluster_degraded', 'gauge', '1 while every node answers the same 5xx (a shared dependency fails; nobody is ejected).', [['', judge.clusterFailure ? 1 : 0]]);
  if (skew) {
    const measured = nodes.all.filter((n) => skew.offset(n) !== undefined);
    family(
      'harbor_lb_node_clock_offset_seconds',
      'gauge',
      "The node's clock minus harbor-lb's (median of recent Date headers and token iat).",
      measured.map((n) => [label(n.name), Math.round(skew.offset(n)!) / 1000]),
    );
  }
  if (rejections) {
    family(
      'harbor_lb_client_rejections_total',
      'counter',
      'Clients refused by harbor-lb itself, by reason: a parser code, CONNECT, TOO_MANY_CONNECTIONS, REQUESTS_PER_CLIENT, MIN_BODY_RATE.',
      [...rejections].map(([reason, n]) => [`reason="${reason.replace(/["\\\n]/g, '_')}"`, n]),
    );
  }
  if (guard) {
    family(
      'harbor_lb_token_verdicts_total',
      'counter',
      'Token checks per node: tokens it issued that verified (good) or not (bad), good cluster tokens its registry rejected, token responses passed on unverified (too large or compressed: not_verified) and 200 answers holding no token (not_a_token).',
      nodes.all.flatMap((n) => {
        const c = guard.countsOf(n);
        return [
          [`${label(n.name)},verdict="good"`, c.good],
          [`${label(n.name)},verdict="bad"`, c.bad],
          [`${label(n.name)},verdict="registry_rejected"`, c.registryRejected],
          [`${label(n.name)},verdict="not_verified"`, c.notVerified],
          [`${label(n.name)},verdict="not_a_token"`, c.notAToken],
        ] as Array<[string, number]>;
      }),
    );
  }
  return `${out.join('\n')}\n`;
}
