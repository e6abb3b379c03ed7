import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { PassiveJudge } from '../../../src/health/passive-judge.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';
import { createLoggers } from '../../../src/log.js';

function setup(n = 3) {
  const clock = new FakeClock();
  const cfg = validateConfig({
    nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${i + 1}` })),
    health: { enabled: false, passive: { consecutiveFailures: 3, ejectFor: '10s', maxEjectFor: '40s', clusterWindow: '10s' } },
  });
  const nodes = new NodeSet(cfg, clock);
  const logs = new LogSink();
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: logs });
  const judge = new PassiveJudge(nodes, cfg.health.passive, clock, logger);
  return { clock, nodes, judge, logs, n1: nodes.all[0]!, n2: nodes.all[1]!, n3: nodes.all[2]! };
}
const s503 = { kind: 'gateway', status: 503, route: 'v2' } as const;
const reset = { kind: 'failed', code: 'ECONNRESET' } as const;
const ok = { kind: 'answered', route: 'v2' } as const;

describe('passive failure detection', () => {
  it('ejects after consecutive failures, a success resetting the count', () => {
    const { judge, n1 } = setup();
    judge.record(n1, reset);
    judge.record(n1, reset);
    judge.record(n1, ok);
    judge.record(n1, reset);
    judge.record(n1, s503);
    assert.equal(n1.state, 'unknown');
    judge.record(n1, s503);
    assert.equal(n1.state, 'unhealthy');
    assert.match(n1.stateWhy, /^3 requests failed in a row \(last: answered 503\); ejected for 10s/);
  });

  it('doubles the back-off up to maxEjectFor, lets each ejection expire by itself, and forgets the series after a quiet period', () => {
    const { judge, nodes, n1, clock } = setup();
    const ejectFor = (): number => {
      for (let i = 0; i < 3; i++) judge.record(n1, reset);
      const d = nodes.conditionsOf(n1).ejectedUntil - clock.now();
      clock.advance(d);
      assert.equal(n1.state, 'unknown', 'back by itself, with active checks off');
      return d;
    };
    assert.deepEqual([ejectFor(), ejectFor(), ejectFor(), ejectFor()], [10_000, 20_000, 40_000, 40_000]);
    clock.advance(40_001);
    judge.record(n1, ok);
    assert.equal(ejectFor(), 10_000);
  });

  it('ejects no more than the cap, and says so once', () => {
    const { judge, n1, n2, logs } = setup();
    for (let i = 0; i < 3; i++) judge.record(n1, reset);
    for (let i = 0; i < 6; i++) judge.record(n2, reset);
    assert.equal(n1.state, 'unhealthy');
    assert.equal(n2.state, 'unknown', 'a second ejection of three nodes is over the cap');
    assert.equal(logs.lines.filter((l) => l.event === 'ejection_capped').length, 1);
  });

  it('takes the same 5xx from every node at once as the cluster failing: nobody ejected, logged once when it starts and ends', () => {
    const { judge, n1, n2, n3, clock, logs } = setup();
    // A storage hiccup: every node answers 503, 30 times.
    for (let i = 0; i < 10; i++) for (const n of [n1, n2, n3]) judge.record(n, s503);
    assert.deepEqual([n1.state, n2.state, n3.state], ['unknown', 'unknown', 'unknown']);
    assert.equal(judge.clusterFailure?.status, 503);
    const lines = () => logs.lines.filter((l) => l.event === 'cluster_degraded').map((l) => l.active);
    assert.deepEqual(lines(), [true]);
    clock.advance(9_000);
    judge.record(n2, s503);
    clock.advance(9_999);
    assert.deepEqual(lines(), [true], 'still failing 9 s ago');
    clock.advance(1);
    assert.deepEqual(lines(), [true, false]);
    assert.equal(judge.clusterFailure, undefined);
  });

  it('lifts an ejection made for a failure that turned out to be the cluster\'s', () => {
    const { judge, n1, n2, n3, logs } = setup();
    for (let i = 0; i < 3; i++) judge.record(n1, s503);
    assert.equal(n1.state, 'unhealthy', 'on its own it looked like n1');
    judge.record(n2, s503);
    judge.record(n3, s503);
    assert.equal(n1.state, 'unknown');
    assert.deepEqual(logs.lines.find((l) => l.event === 'cluster_degraded')?.lifted, ['n1']);
  });

  it('does not call it the cluster\'s when one node answers well, or the 5xx differ', () => {
    const { judge, n1, n2, n3 } = setup();
    judge.record(n1, s503);
    judge.record(n2, s503);
    judge.record(n3, ok);
    judge.record(n3, { kind: 'gateway', status: 502, route: 'v2' });
    assert.equal(judge.clusterFailure, undefined);
    judge.record(n1, s503);
    judge.record(n1, s503);
    assert.equal(n1.state, 'unhealthy');
  });

  it('judges a shared failure over the nodes taking traffic: a node down for its checks does not hide it', () => {
    const { judge, nodes, n1, n2, n3 } = setup();
    nodes.setCheck(n1, 'unhealthy', 'health check failed: ECONNREFUSED');
    for (let i = 0; i < 5; i++) {
      judge.record(n2, s503);
      judge.record(n3, s503);
    }
    assert.equal(judge.clusterFailure?.status, 503);
    assert.deepEqual([n2.state, n3.state], ['unknown', 'unknown'], 'the two that are left are not ejected');
  });

  // Found in review: once an episode was on, any 503 kept it on, so a node failing alone after a
  // shared hiccup was never ejected and nobody's GET was retried.
  it('ends the episode when one node answers that route well again, and a node failing alone is its own failure again', () => {
    const { judge, n1, n2, n3, logs } = setup();
    for (const n of [n1, n2, n3]) judge.record(n, s503);
    assert.equal(judge.clusterFailure?.status, 503);
    judge.record(n1, ok);
    assert.equal(judge.clusterFailure, undefined, 'n1 pulls again: the cause is no longer shared');
    judge.record(n2, ok);
    for (let i = 0; i < 3; i++) judge.record(n3, s503);
    assert.equal(n3.state, 'unhealthy', 'n3 failing alone is ejected');
    assert.deepEqual(logs.lines.filter((l) => l.event === 'cluster_degraded').map((l) => l.active), [true, false]);
  });

  it('a good answer on another route (a token while storage is down) does not end a pull episode', () => {
    const { judge, n1, n2, n3 } = setup();
    for (const n of [n1, n2, n3]) judge.record(n, s503);
    judge.record(n1, { kind: 'answered', route: 'token' });
    judge.record(n2, s503);
    assert.equal(judge.clusterFailure?.status, 503);
  });

  it('never ejects the only node for its answers', () => {
    const { judge, n1 } = setup(1);
    for (let i = 0; i < 10; i++) judge.record(n1, s503);
    assert.equal(n1.state, 'unknown');
  });
});
