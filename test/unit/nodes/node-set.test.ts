import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet, type ClusterRuleChange } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup(n = 3, extra: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const cfg = validateConfig({ nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${i + 1}` })), ...extra });
  const nodes = new NodeSet(cfg, clock);
  const rules: ClusterRuleChange[] = [];
  nodes.on('rule', (r) => rules.push(r));
  const [n1, n2, n3] = nodes.all;
  for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
  return { clock, nodes, rules, n1: n1!, n2: n2!, n3: n3! };
}
const names = (ns: readonly { name: string }[]) => ns.map((n) => n.name);

describe('node state: one owner, derived from named conditions', () => {
  it('derives drain over quarantine over a failed check over an ejection', () => {
    const { nodes, n1, clock } = setup();
    nodes.eject(n1, clock.now() + 10_000, 'ejected');
    assert.equal(n1.state, 'unhealthy');
    nodes.setCheck(n1, 'unhealthy', 'check failed');
    assert.equal(n1.stateWhy, 'check failed');
    nodes.quarantine(n1, 'token trust');
    assert.equal(n1.state, 'quarantined');
    nodes.setDrained(n1, true);
    assert.equal(n1.state, 'draining');
    nodes.setDrained(n1, false);
    nodes.release(n1);
    nodes.setCheck(n1, 'healthy', 'ok');
    assert.equal(n1.state, 'unhealthy', 'the ejection still holds');
  });

  it('ends an ejection on its own when its back-off elapses, with no check involved', () => {
    const { nodes, n1, clock } = setup(3, { health: { enabled: false } });
    assert.ok(nodes.eject(n1, clock.now() + 10_000, 'ejected'));
    clock.advance(9_999);
    assert.equal(n1.state, 'unhealthy');
    clock.advance(1);
    assert.equal(n1.state, 'healthy');
    assert.ok(nodes.available().includes(n1));
  });

  // Found in review: Node's timers may fire a millisecond before Date.now() reaches their time;
  // the expiry then saw the ejection still on, and nothing ever looked again.
  it('ends an ejection even when its timer fires early', () => {
    const fake = new FakeClock();
    const early = { now: () => fake.now(), setTimeout: (fn: () => void, ms: number) => fake.setTimeout(fn, ms > 1 ? ms - 1 : ms), clearTimeout: (t: unknown) => fake.clearTimeout(t as never) };
    const cfg = validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }, { name: 'n2', url: 'http://127.0.0.1:2' }] });
    const nodes = new NodeSet(cfg, early);
    const n1 = nodes.all[0]!;
    nodes.setCheck(n1, 'healthy', 'ok');
    nodes.eject(n1, fake.now() + 10_000, 'x');
    fake.advance(10_000);
    assert.equal(n1.state, 'healthy');
  });

  it('caps ejections at a third of the nodes, and always lets one node be ejected', () => {
    const { nodes, n1, n2, n3, clock } = setup();
    assert.equal(nodes.maxEjected(), 1);
    assert.equal(nodes.eject(n1, clock.now() + 10_000, 'x'), true);
    assert.equal(nodes.eject(n2, clock.now() + 10_000, 'x'), false, 'a second of three is over the cap');
    assert.equal(n2.state, 'healthy');
    assert.equal(nodes.eject(n1, clock.now() + 20_000, 'x'), true, 'extending the one already out is fine');
    clock.advance(20_000);
    assert.equal(nodes.eject(n3, clock.now() + 10_000, 'x'), true, 'once it is back, another may go');
    const one = setup(1);
    assert.equal(one.nodes.maxEjected(), 1);
    const six = setup(6);
    assert.equal(six.nodes.maxEjected(), 2);
    const half = setup(4, { health: { passive: { maxEjectedFraction: 0.5 } } });
    assert.equal(half.nodes.maxEjected(), 2);
  });

  it('says each change of reachability, also when the node state stays as it was (panic routes over the nodes that answer)', () => {
    const { nodes, n1, n2, n3 } = setup();
    for (const n of [n1, n2, n3]) nodes.setCheck(n, 'unhealthy', 'registry: unhealthy');
    const said: Array<[string, boolean]> = [];
    const states: string[] = [];
    nodes.on('reachability', ({ node, reachable }) => said.push([node.name, reachable]));
    nodes.on('state', ({ node }) => states.push(node.name));
    nodes.setReachable(n1, false);
    nodes.setReachable(n1, false, 'again');
    assert.ok(!nodes.available().includes(n1));
    nodes.setReachable(n1, true);
    assert.ok(nodes.available().includes(n1));
    nodes.setReachable(n1, true);
    assert.deepEqual(said, [['n1', false], ['n1', true]], 'once per change');
    assert.deepEqual(states, [], 'n1 stayed unhealthy throughout: no state event would have told the workers');
  });

  it('panics when too few nodes are available: every node that answers takes traffic, logged once each way', () => {
    const { nodes, n1, n2, n3, rules } = setup();
    nodes.setCheck(n1, 'unhealthy', 'registry: unhealthy');
    nodes.setCheck(n2, 'unhealthy', 'registry: unhealthy');
    assert.deepEqual(names(nodes.available()), ['n3'], 'one of three is above the 0.3 threshold');
    assert.equal(nodes.panic, false);
    nodes.setCheck(n3, 'unhealthy', 'registry: unhealthy');
    assert.deepEqual(names(nodes.available()), ['n1', 'n2', 'n3'], 'none available: route over all that answer');
    assert.equal(nodes.panic, true);
    nodes.setReachable(n1, false);
    assert.deepEqual(names(nodes.available()), ['n2', 'n3'], 'a node that does not answer is left out while others answer');
    nodes.setReachable(n2, false);
    nodes.setReachable(n3, false);
    assert.deepEqual(names(nodes.available()), ['n1', 'n2', 'n3'], 'none answers: try them all before saying 503');
    // A passing check reports both: it answers, and it is healthy.
    nodes.setReachable(n2, true);
    nodes.setCheck(n2, 'healthy', 'ok');
    assert.deepEqual(names(nodes.available()), ['n2']);
    assert.deepEqual(
      rules.map((r) => [r.rule, r.active]),
      [
        ['panic', true],
        ['panic', false],
      ],
    );
  });

  it('takes a node that does not answer out, whatever the cap, and tries it again later', () => {
    const { nodes, n1, n2, n3, clock } = setup();
    assert.ok(nodes.eject(n2, clock.now() + 60_000, 'flaky earlier'));
    nodes.setReachable(n1, false, 'ECONNREFUSED');
    assert.equal(n1.state, 'unhealthy');
    assert.match(n1.stateWhy, /does not answer: ECONNREFUSED/);
    assert.deepEqual(names(nodes.available()), ['n3']);
    nodes.setReachable(n3, false, 'ECONNREFUSED');
    // Nobody healthy is left: panic routes over what answers, the ejected n2 included.
    assert.deepEqual(names(nodes.available()), ['n2']);
    clock.advance(10_000);
    assert.deepEqual(names(nodes.available()), ['n1', 'n3'], 'after health.passive.ejectFor they are tried again');
  });

  it('never routes to drained or quarantined nodes in panic', () => {
    const { nodes, n1, n2, n3 } = setup();
    nodes.setDrained(n1, true);
    nodes.quarantine(n2, 'token trust');
    nodes.setCheck(n3, 'unhealthy', 'x');
    // n3 cannot serve: the quarantine fails open rather than leave nothing.
    assert.equal(n2.state, 'healthy');
    assert.deepEqual(names(nodes.available()), ['n2']);
    nodes.setCheck(n3, 'healthy', 'ok');
    assert.equal(n2.state, 'quarantined');
    nodes.setCheck(n3, 'unhealthy', 'x');
    nodes.setReachable(n2, false);
    nodes.release(n2);
    nodes.setCheck(n2, 'unhealthy', 'x');
    assert.equal(nodes.panic, true);
    assert.ok(!nodes.available().includes(n1), 'drained stays out even in panic');
  });

  it('fails a quarantine open when no other node can serve, and closes it when one returns', () => {
    const { nodes, n1, n2, n3, rules } = setup();
    nodes.quarantine(n3, 'token trust: TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.equal(n3.state, 'quarantined');
    assert.deepEqual(names(nodes.available()), ['n1', 'n2']);
    nodes.setCheck(n1, 'unhealthy', 'health check failed: ECONNREFUSED');
    assert.equal(n3.state, 'quarantined', 'n2 can still serve');
    nodes.setReachable(n2, false);
    assert.equal(n3.state, 'healthy', 'nobody else answers: the quarantine fails open');
    assert.match(n3.stateWhy, /quarantine failed open/);
    assert.ok(nodes.available().includes(n3));
    nodes.setReachable(n2, true);
    assert.equal(n3.state, 'quarantined', 'closed again as soon as a trusted node can serve');
    assert.deepEqual(
      rules.filter((r) => r.rule === 'quarantine_fail_open').map((r) => [r.active, r.nodes]),
      [
        [true, ['n3']],
        [false, []],
      ],
    );
  });
});
