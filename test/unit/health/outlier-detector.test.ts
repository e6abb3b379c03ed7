import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { OutlierDetector } from '../../../src/health/outlier-detector.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';
import { createLoggers } from '../../../src/log/loggers.js';
import type { CheckVerdict } from '../../../src/health/verdict.js';
import type { ClusterNode } from '../../../src/nodes/node.js';

/** Lets the judge's check (a resolved promise here) and what follows it run. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

function setup(n = 3) {
  const clock = new FakeClock();
  const cfg = validateConfig({
    nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${i + 1}` })),
    health: { enabled: false, passive: { consecutiveFailures: 3, ejectFor: '10s', maxEjectFor: '40s', clusterWindow: '10s' } },
  });
  const nodes = new NodeSet(cfg, clock);
  const logs = new LogSink();
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: logs });
  /** What harbor-lb's check of each node finds: failing unless a test says otherwise. */
  const checkOk = new Map<ClusterNode, boolean | 'not made'>();
  const checked: string[] = [];
  const recheck = async (node: ClusterNode): Promise<CheckVerdict> => {
    checked.push(node.name);
    if (checkOk.get(node) === 'not made') return { ok: false, notMade: true, detail: 'health check not made (EMFILE): harbor-lb is out of file descriptors' };
    return checkOk.get(node) === true ? { ok: true, detail: 'all components healthy' } : { ok: false, detail: 'health check failed: no answer within 2000 ms' };
  };
  const outliers = new OutlierDetector(nodes, cfg.health.passive, clock, logger, recheck);
  return { clock, nodes, outliers, logs, checkOk, checked, n1: nodes.all[0]!, n2: nodes.all[1]!, n3: nodes.all[2]! };
}
const s503 = { kind: 'gateway', status: 503, route: 'v2' } as const;
const reset = { kind: 'failed', code: 'ECONNRESET' } as const;
const ok = { kind: 'answered', route: 'v2' } as const;

describe('passive failure detection', () => {
  it('consecutive failures ask for a check; a failed check ejects, a success resetting the count first', async () => {
    const { outliers, n1, checked } = setup();
    outliers.record(n1, reset);
    outliers.record(n1, reset);
    outliers.record(n1, ok);
    outliers.record(n1, reset);
    outliers.record(n1, s503);
    await settle();
    assert.deepEqual(checked, [], 'two in a row: no check yet');
    assert.equal(n1.state, 'unknown');
    outliers.record(n1, s503);
    await settle();
    assert.deepEqual(checked, ['n1']);
    assert.equal(n1.state, 'unhealthy');
    assert.match(n1.stateWhy, /^3 request\(s\) failed in a row \(last: answered 503\) and harbor-lb's check then failed \(health check failed: no answer within 2000 ms\); ejected for 10s/);
  });

  it("a check harbor-lb could not make (its own shortage) ejects nothing and clears nothing", async () => {
    const { outliers, n1, checkOk, checked, clock } = setup();
    checkOk.set(n1, 'not made');
    for (let i = 0; i < 3; i++) outliers.record(n1, reset);
    await settle();
    assert.deepEqual(checked, ['n1']);
    assert.equal(n1.state, 'unknown', 'not ejected');
    // The failures still stand: the next one asks again, and a check that is made decides.
    checkOk.set(n1, false);
    clock.advance(1000);
    outliers.record(n1, reset);
    await settle();
    assert.deepEqual(checked, ['n1', 'n1']);
    assert.equal(n1.state, 'unhealthy');
  });

  // Issue 18: failed requests alone ejected nodes, and a client can make requests fail (a Range
  // past the end, a stalled read or upload the node's nginx gives up on).
  it('failures alone never eject: a passing check keeps the node in, however many fail, and checks are rate-limited', async () => {
    const { outliers, n1, checkOk, checked, clock, logs } = setup();
    checkOk.set(n1, true);
    for (let i = 0; i < 3000; i++) outliers.record(n1, i % 2 === 0 ? reset : s503);
    await settle();
    assert.equal(n1.state, 'unknown');
    assert.deepEqual(checked, ['n1'], 'one check for the burst');
    for (let i = 0; i < 3000; i++) outliers.record(n1, reset);
    await settle();
    assert.deepEqual(checked, ['n1'], 'failures after that check wait for the spacing');
    clock.advance(999);
    await settle();
    assert.equal(checked.length, 1);
    clock.advance(1);
    await settle();
    assert.equal(checked.length, 2, 'the failures went on: one more check a second later');
    clock.advance(10_000);
    await settle();
    assert.equal(checked.length, 2, 'no failure since, no check');
    assert.equal(n1.state, 'unknown');
    const cleared = logs.lines.filter((l) => l.event === 'node_suspected');
    assert.equal(cleared.length, 1, 'one line a minute');
    assert.equal(cleared[0]!.cleared, true);
    assert.equal(outliers.recheckCounts.ok, 2);
  });

  it('a refused connection is out at once without a check (no client can cause it)', async () => {
    const { outliers, nodes, n1, checked } = setup();
    outliers.record(n1, { kind: 'unreachable', code: 'ECONNREFUSED' });
    await settle();
    assert.deepEqual(checked, []);
    assert.equal(nodes.conditionsOf(n1).reachable, false);
    assert.equal(n1.state, 'unhealthy');
  });

  it('doubles the back-off up to maxEjectFor, lets each ejection expire by itself, and forgets the series after a quiet period', async () => {
    const { outliers, nodes, n1, clock } = setup();
    const ejectFor = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) outliers.record(n1, reset);
      await settle();
      const d = nodes.conditionsOf(n1).ejectedUntil - clock.now();
      clock.advance(d);
      assert.equal(n1.state, 'unknown', 'back by itself, with active checks off');
      return d;
    };
    assert.deepEqual([await ejectFor(), await ejectFor(), await ejectFor(), await ejectFor()], [10_000, 20_000, 40_000, 40_000]);
    clock.advance(40_001);
    outliers.record(n1, ok);
    assert.equal(await ejectFor(), 10_000);
  });

  // Request workers send a node's good answers only while this says they matter: each case where
  // a good answer changes something must say so, or a worker's answers would be dropped.
  it('awaits a good answer from a node only while one would change something', async () => {
    const { outliers, nodes, n1, n2, n3, clock } = setup();
    const awaited = () => [n1, n2, n3].filter((n) => outliers.awaitsAnswer(n)).map((n) => n.name);
    assert.deepEqual(awaited(), [], 'a healthy cluster: good answers change nothing');
    outliers.record(n1, reset);
    assert.deepEqual(awaited(), ['n1'], 'a failure to clear');
    outliers.record(n1, ok);
    assert.deepEqual(awaited(), []);
    outliers.record(n2, s503);
    assert.deepEqual(awaited(), ['n2'], 'a 503 the cluster detector holds (and counts)');
    outliers.record(n2, { kind: 'answered', route: 'token' });
    assert.deepEqual(awaited(), ['n2'], 'a good answer on another route clears the count, not the 503 held for the route');
    outliers.record(n2, ok);
    assert.deepEqual(awaited(), [], 'one on its route does');
    outliers.record(n2, s503);
    outliers.record(n2, { kind: 'answered', route: 'token' });
    assert.deepEqual(awaited(), ['n2']);
    clock.advance(10_001);
    assert.deepEqual(awaited(), [], 'a 503 older than clusterWindow no longer counts: no answer is waited for it');
    outliers.record(n3, { kind: 'unreachable', code: 'ECONNREFUSED' });
    assert.deepEqual(awaited(), ['n3'], 'an unreachable mark to lift');
    outliers.record(n3, ok);
    assert.equal(nodes.conditionsOf(n3).reachable, true);
    assert.deepEqual(awaited(), []);
    // A cluster-wide failure: any node's good answer ends it.
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    assert.notEqual(outliers.clusterFailure, undefined);
    outliers.record(n1, ok);
    outliers.record(n2, ok);
    assert.deepEqual(awaited(), ['n3'], 'over: only n3 still holds a 503');
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    for (const n of [n1, n2]) outliers.record(n, ok);
    outliers.record(n3, ok);
    assert.deepEqual(awaited(), []);
    // An ejection: its back-off series is forgotten only by a good answer after a quiet maxEjectFor.
    for (let i = 0; i < 3; i++) outliers.record(n1, reset);
    await settle();
    assert.equal(n1.state, 'unhealthy');
    clock.advance(10_000);
    assert.equal(n1.state, 'unknown');
    assert.deepEqual(awaited(), ['n1'], 'back in, with a back-off series to forget');
    outliers.record(n1, ok);
    assert.deepEqual(awaited(), ['n1'], 'too early to forget it');
    clock.advance(40_001);
    outliers.record(n1, ok);
    assert.equal(outliers.ejections(n1), 0);
    assert.deepEqual(awaited(), []);
  });

  it('awaits every node\'s good answer during a cluster-wide failure, also one that holds no failure of its own', () => {
    const { outliers, nodes, n1, n2, n3 } = setup();
    const awaited = () => [n1, n2, n3].filter((n) => outliers.awaitsAnswer(n)).map((n) => n.name);
    // n3 is out of rotation (its check failed), so the episode is n1's and n2's: n3 holds nothing.
    nodes.setCheck(n3, 'unhealthy', 'its check failed');
    assert.equal(n3.state, 'unhealthy');
    outliers.record(n1, s503);
    outliers.record(n2, s503);
    assert.notEqual(outliers.clusterFailure, undefined, 'every node in rotation answered 503');
    assert.deepEqual(awaited(), ['n1', 'n2', 'n3'], 'n3 back and answering ends the episode: its answer is wanted');
    nodes.setCheck(n3, 'healthy', 'its check passed');
    outliers.record(n3, ok);
    assert.equal(outliers.clusterFailure, undefined, 'its good answer on the route ended it');
  });

  it('awaits a good answer from a node whose capped ejection was said, so the warning is said again after one', async () => {
    const { outliers, n1, n2, logs, checkOk, clock } = setup();
    for (let i = 0; i < 3; i++) outliers.record(n1, reset);
    await settle();
    assert.equal(n1.state, 'unhealthy');
    for (let i = 0; i < 3; i++) outliers.record(n2, reset);
    await settle();
    assert.equal(logs.lines.filter((l) => l.event === 'ejection_capped').length, 1);
    // Its next failure's check passes: the count is cleared, the warning is not re-armed yet.
    checkOk.set(n2, true);
    clock.advance(1000);
    outliers.record(n2, reset);
    await settle();
    assert.equal(outliers.consecutiveFailures(n2), 0);
    assert.equal(outliers.awaitsAnswer(n2), true, 'a good answer re-arms the warning');
    outliers.record(n2, ok);
    assert.equal(outliers.awaitsAnswer(n2), false);
  });

  it('ejects no more than the cap, and says so once', async () => {
    const { outliers, n1, n2, logs, clock } = setup();
    for (let i = 0; i < 3; i++) outliers.record(n1, reset);
    await settle();
    for (let i = 0; i < 3; i++) outliers.record(n2, reset);
    await settle();
    clock.advance(1000);
    for (let i = 0; i < 3; i++) outliers.record(n2, reset);
    await settle();
    assert.equal(n1.state, 'unhealthy');
    assert.equal(n2.state, 'unknown', 'a second ejection of three nodes is over the cap');
    assert.equal(logs.lines.filter((l) => l.event === 'ejection_capped').length, 1);
  });

  it('tells its listeners when a cluster-wide failure begins and when it ends, by a good answer or by its quiet window', () => {
    const { outliers, n1, n2, n3, clock } = setup();
    const told: Array<string | undefined> = [];
    const stop = outliers.onClusterChange(() => told.push(outliers.clusterFailure === undefined ? 'over' : `${outliers.clusterFailure.status}`));
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    for (const n of [n1, n2]) outliers.record(n, s503);
    outliers.record(n1, ok);
    assert.deepEqual(told, ['503', 'over'], 'begun by the third node, ended by a good answer');
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    clock.advance(10_000);
    assert.deepEqual(told, ['503', 'over', '503', 'over'], 'ended by 10 s without the failure: a timer, no verdict');
    stop();
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    assert.equal(told.length, 4, 'no longer told');
  });

  it('takes the same 5xx from every node at once as the cluster failing: nobody ejected, logged once when it starts and ends', async () => {
    const { outliers, n1, n2, n3, clock, logs } = setup();
    // A storage hiccup: every node answers 503, 30 times.
    for (let i = 0; i < 10; i++) for (const n of [n1, n2, n3]) outliers.record(n, s503);
    await settle();
    assert.deepEqual([n1.state, n2.state, n3.state], ['unknown', 'unknown', 'unknown']);
    assert.equal(outliers.clusterFailure?.status, 503);
    const lines = () => logs.lines.filter((l) => l.event === 'cluster_degraded').map((l) => l.active);
    assert.deepEqual(lines(), [true]);
    clock.advance(9_000);
    outliers.record(n2, s503);
    clock.advance(9_999);
    assert.deepEqual(lines(), [true], 'still failing 9 s ago');
    clock.advance(1);
    assert.deepEqual(lines(), [true, false]);
    assert.equal(outliers.clusterFailure, undefined);
  });

  it('lifts an ejection made for a failure that turned out to be the cluster\'s', async () => {
    const { outliers, n1, n2, n3, logs } = setup();
    for (let i = 0; i < 3; i++) outliers.record(n1, s503);
    await settle();
    assert.equal(n1.state, 'unhealthy', 'on its own it looked like n1');
    outliers.record(n2, s503);
    outliers.record(n3, s503);
    assert.equal(n1.state, 'unknown');
    assert.deepEqual(logs.lines.find((l) => l.event === 'cluster_degraded')?.lifted, ['n1']);
  });

  it('lifts no ejection made for a failure on another route: a cluster failure of one route says nothing of the others', async () => {
    const { outliers, n1, n2, n3, logs } = setup();
    for (let i = 0; i < 3; i++) outliers.record(n1, s503);
    await settle();
    assert.equal(n1.state, 'unhealthy');
    const other503 = { kind: 'gateway', status: 503, route: 'other' } as const;
    outliers.record(n1, other503);
    outliers.record(n2, other503);
    outliers.record(n3, other503);
    assert.deepEqual([outliers.clusterFailure?.route, n1.state], ['other', 'unhealthy']);
    const line = logs.lines.find((l) => l.event === 'cluster_degraded')!;
    assert.deepEqual([line.route, line.lifted], ['other', []]);
  });

  // Found in review: one episode at a time, so a client's requests that every node answers 503 on
  // one route ended a storage outage's episode on pulls, and the two took turns, logging each turn.
  it('keeps an episode per route: a second route failing neither ends the first nor takes turns with it', () => {
    const { outliers, n1, n2, n3, logs } = setup();
    const other503 = { kind: 'gateway', status: 503, route: 'other' } as const;
    for (let round = 0; round < 5; round++) {
      for (const n of [n1, n2, n3]) outliers.record(n, s503);
      for (const n of [n1, n2, n3]) outliers.record(n, other503);
    }
    assert.deepEqual([outliers.clusterFailureOn('v2')?.status, outliers.clusterFailureOn('other')?.status, outliers.clusterFailureOn('token')], [503, 503, undefined]);
    assert.deepEqual(outliers.clusterFailures.map((f) => f.route), ['v2', 'other']);
    const lines = logs.lines.filter((l) => l.event === 'cluster_degraded').map((l) => [l.route, l.active]);
    assert.deepEqual(lines, [['v2', true], ['other', true]], 'one line as each began, none since');
    outliers.record(n1, { kind: 'answered', route: 'other' });
    assert.deepEqual(outliers.clusterFailures.map((f) => f.route), ['v2'], "a good answer ends its own route's episode only");
  });

  // Found by a second probe: an episode on `other` (a path every node answers 503) kept a node
  // that failed pulls and its check from being ejected.
  it("ejects a node whose pulls fail and whose check fails while another route's episode is under way", async () => {
    const { outliers, n1, n2, n3 } = setup();
    const other503 = { kind: 'gateway', status: 503, route: 'other' } as const;
    for (const n of [n1, n2, n3]) outliers.record(n, other503);
    assert.equal(outliers.clusterFailureOn('other')?.status, 503);
    for (let i = 0; i < 3; i++) outliers.record(n1, s503);
    await settle();
    assert.equal(n1.state, 'unhealthy', 'its own v2 failures and failed check');
    // Connection failures are no route's: another route's episode does not hold them back either.
    const second = setup();
    for (const n of [second.n1, second.n2, second.n3]) second.outliers.record(n, other503);
    for (let i = 0; i < 3; i++) second.outliers.record(second.n2, reset);
    await settle();
    assert.equal(second.n2.state, 'unhealthy');
  });

  it('does not call it the cluster\'s when one node answers well, or the 5xx differ', async () => {
    const { outliers, n1, n2, n3 } = setup();
    outliers.record(n1, s503);
    outliers.record(n2, s503);
    outliers.record(n3, ok);
    outliers.record(n3, { kind: 'gateway', status: 502, route: 'v2' });
    assert.equal(outliers.clusterFailure, undefined);
    outliers.record(n1, s503);
    outliers.record(n1, s503);
    await settle();
    assert.equal(n1.state, 'unhealthy');
  });

  it('judges a shared failure over the nodes taking traffic: a node down for its checks does not hide it', async () => {
    const { outliers, nodes, n1, n2, n3 } = setup();
    nodes.setCheck(n1, 'unhealthy', 'health check failed: ECONNREFUSED');
    for (let i = 0; i < 5; i++) {
      outliers.record(n2, s503);
      outliers.record(n3, s503);
    }
    await settle();
    assert.equal(outliers.clusterFailure?.status, 503);
    assert.deepEqual([n2.state, n3.state], ['unknown', 'unknown'], 'the two that are left are not ejected');
  });

  // Found in review: once an episode was on, any 503 kept it on, so a node failing alone after a
  // shared hiccup was never ejected and nobody's GET was retried.
  it('ends the episode when one node answers that route well again, and a node failing alone is its own failure again', async () => {
    const { outliers, n1, n2, n3, logs } = setup();
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    assert.equal(outliers.clusterFailure?.status, 503);
    outliers.record(n1, ok);
    assert.equal(outliers.clusterFailure, undefined, 'n1 pulls again: the cause is no longer shared');
    outliers.record(n2, ok);
    for (let i = 0; i < 3; i++) outliers.record(n3, s503);
    await settle();
    assert.equal(n3.state, 'unhealthy', 'n3 failing alone is ejected');
    assert.deepEqual(logs.lines.filter((l) => l.event === 'cluster_degraded').map((l) => l.active), [true, false]);
  });

  it('a good answer on another route (a token while storage is down) does not end a pull episode', () => {
    const { outliers, n1, n2, n3 } = setup();
    for (const n of [n1, n2, n3]) outliers.record(n, s503);
    outliers.record(n1, { kind: 'answered', route: 'token' });
    outliers.record(n2, s503);
    assert.equal(outliers.clusterFailure?.status, 503);
  });

  it('never ejects the only node for its answers', async () => {
    const { outliers, n1 } = setup(1);
    for (let i = 0; i < 10; i++) outliers.record(n1, s503);
    await settle();
    assert.equal(n1.state, 'unknown');
  });
});
