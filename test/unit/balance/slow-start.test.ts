import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeastRequestsSelector } from '../../../src/balance/least-requests.js';
import { RoundRobinSelector } from '../../../src/balance/round-robin.js';
import { SlowStart } from '../../../src/balance/slow-start.js';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup(window: number) {
  const clock = new FakeClock();
  const cfg = validateConfig({
    nodes: [
      { name: 'a', url: 'http://127.0.0.1:1' },
      { name: 'b', url: 'http://127.0.0.1:2' },
    ],
  });
  const nodes = new NodeSet(cfg, clock);
  const slow = new SlowStart(window, nodes, clock);
  for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
  const rr = new RoundRobinSelector(slow.weight);
  /** b's share of 1,000 balanced picks now. */
  const shareOfB = () => {
    let b = 0;
    for (let i = 0; i < 1000; i++) if (rr.select(nodes.available())!.name === 'b') b++;
    return b / 1000;
  };
  return { clock, nodes, slow, shareOfB, b: nodes.get('b')! };
}

describe('slow start (balance.slowStart)', () => {
  it('does not ramp nodes that start together', () => {
    const { shareOfB } = setup(60_000);
    assert.equal(shareOfB(), 0.5);
  });

  it('ramps a node back from unhealthy from a tenth of its weight to all of it over the window', () => {
    const { clock, nodes, slow, shareOfB, b } = setup(60_000);
    nodes.setCheck(b, 'unhealthy', 'down');
    clock.advance(5_000);
    nodes.setCheck(b, 'healthy', 'back');
    // Weights a=1, b=0.1 at first: b gets 0.1/1.1 of the picks; halfway 0.55/1.55; then half.
    assert.ok(Math.abs(shareOfB() - 0.1 / 1.1) < 0.01, `at the start ${shareOfB()}`);
    // Least requests too: with as many in flight on each, the node at full weight wins.
    const lr = new LeastRequestsSelector(() => 0.5, slow.weight);
    assert.equal(lr.select(nodes.available())!.name, 'a');
    const ends = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(() => nodes.get('a')!.traffic.begin());
    assert.equal(lr.select(nodes.available())!.name, 'b', 'until a carries over ten times what b does');
    for (const end of ends) end(true);
    clock.advance(30_000);
    assert.ok(Math.abs(shareOfB() - 0.55 / 1.55) < 0.01, `halfway ${shareOfB()}`);
    clock.advance(30_000);
    assert.equal(shareOfB(), 0.5);
  });

  it('ramps a node back from draining or quarantine too, and takes a reload\'s new window', () => {
    const { clock, nodes, slow, shareOfB, b } = setup(60_000);
    nodes.setDrained(b, true);
    nodes.setDrained(b, false);
    assert.ok(shareOfB() < 0.1);
    slow.configure(0);
    assert.equal(shareOfB(), 0.5, 'off: full weight at once');
    slow.configure(10_000);
    clock.advance(10_000);
    assert.equal(shareOfB(), 0.5, 'a shorter window already past');
  });

  it('is off at 0s: a node back gets its full share at once', () => {
    const { clock, nodes, shareOfB, b } = setup(0);
    nodes.setCheck(b, 'unhealthy', 'down');
    clock.advance(1_000);
    nodes.setCheck(b, 'healthy', 'back');
    assert.equal(shareOfB(), 0.5);
  });
});
