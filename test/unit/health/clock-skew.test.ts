import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { ClockSkew, FLAG_CLOCK_SKEW } from '../../../src/health/clock-skew.js';
import { createLoggers } from '../../../src/log/loggers.js';
import { NodeFlags } from '../../../src/nodes/node-flags.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';

function setup() {
  const clock = new FakeClock();
  const nodes = new NodeSet(validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }] }), clock);
  const logs = new LogSink();
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: logs });
  const skew = new ClockSkew(nodes, new NodeFlags(nodes, logger, clock), { warnAfter: 5_000, tokensAwayAfter: 60_000 });
  return { skew, n1: nodes.all[0]!, logs };
}

describe('clock skew', () => {
  it('takes the median of recent samples, so one odd Date header moves nothing', () => {
    const { skew, n1 } = setup();
    assert.equal(skew.offset(n1), undefined);
    for (const o of [200, -300, 90_000, 100, 0]) skew.observe(n1, o, 'date');
    assert.equal(skew.offset(n1), 100);
    assert.equal(n1.flags.has(FLAG_CLOCK_SKEW), false);
  });

  it('flags a node past the warning with its offset as evidence, routes tokens away past the leeway, and clears it once in sync', () => {
    const { skew, n1, logs } = setup();
    for (let i = 0; i < 3; i++) skew.observe(n1, 20_000, 'date');
    assert.equal(n1.flags.has(FLAG_CLOCK_SKEW), true);
    assert.equal(skew.tokensAway(n1), false, '20 s is inside the registries 60 s leeway');
    const raised = logs.lines.filter((l) => l.event === 'node_flag' && l.code === FLAG_CLOCK_SKEW && l.raised === true);
    assert.equal(raised.length, 1, 'logged once');
    assert.equal((raised[0]!.evidence as { offsetSeconds: number }).offsetSeconds, 20);
    assert.match(String(raised[0]!.fix), /NTP/);
    for (let i = 0; i < 3; i++) skew.observe(n1, -120_000, 'token');
    assert.equal(skew.tokensAway(n1), true);
    for (let i = 0; i < 5; i++) skew.observe(n1, 300, 'date');
    assert.equal(n1.flags.has(FLAG_CLOCK_SKEW), false);
    assert.equal(skew.tokensAway(n1), false);
    assert.equal(logs.lines.filter((l) => l.event === 'node_flag' && l.raised === false).length, 1);
  });
});
