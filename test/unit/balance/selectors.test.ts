import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeastRequestsSelector } from '../../../src/balance/least-requests.js';
import { RoundRobinSelector } from '../../../src/balance/round-robin.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeTraffic } from '../../../src/nodes/node-traffic.js';

/** A node as selectors see it: a name, a weight and `inflight` attempts under way. */
const node = (name: string, inflight = 0, weight = 1) => {
  const traffic = new NodeTraffic();
  for (let i = 0; i < inflight; i++) traffic.begin();
  return { name, weight, traffic } as unknown as ClusterNode;
};

/** A random source that returns the given numbers in order. */
const scripted = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('least requests (power of two choices)', () => {
  it('keeps the less loaded of the two drawn nodes', () => {
    const a = node('a', 5);
    const b = node('b', 1);
    const c = node('c', 0);
    // Draws a (0.0 -> index 0) and b (0.0 -> index 0 of the rest, shifted to 1): b is less loaded.
    assert.equal(new LeastRequestsSelector(scripted(0, 0)).select([a, b, c]), b);
    // Draws c (0.9 -> index 2) and a (0.0): c is less loaded.
    assert.equal(new LeastRequestsSelector(scripted(0.9, 0)).select([a, b, c]), c);
  });

  it('weighs load by node weight', () => {
    const heavy = node('heavy', 3, 4); // (3+1)/4 = 1
    const light = node('light', 1, 1); // (1+1)/1 = 2
    assert.equal(new LeastRequestsSelector(scripted(0, 0)).select([heavy, light]), heavy);
  });

  it('never draws the same node twice and skips excluded ones', () => {
    const a = node('a');
    const b = node('b', 9);
    assert.equal(new LeastRequestsSelector(scripted(0.99, 0.99)).select([a, b]), a, 'the second draw skips the first');
    assert.equal(new LeastRequestsSelector(scripted(0)).select([a, b], new Set([a])), b);
    assert.equal(new LeastRequestsSelector(scripted(0)).select([a], new Set([a])), undefined);
    assert.equal(new LeastRequestsSelector(scripted(0)).select([]), undefined);
  });

  it('spreads load over equal nodes with a real random source', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const sel = new LeastRequestsSelector(Math.random);
    // Requests that stay in flight: each pick raises that node's load, so picks must even out.
    for (let i = 0; i < 300; i++) sel.select(nodes)!.traffic.begin();
    for (const n of nodes) assert.ok(n.traffic.inflight >= 90 && n.traffic.inflight <= 110, `${n.name} got ${n.traffic.inflight} of 300`);
  });
});

describe('smooth weighted round robin', () => {
  it('interleaves by weight', () => {
    const a = node('a', 0, 5);
    const b = node('b', 0, 1);
    const c = node('c', 0, 1);
    const sel = new RoundRobinSelector();
    const seq = Array.from({ length: 7 }, () => sel.select([a, b, c])!.name).join('');
    assert.equal(seq, 'aabacaa');
  });

  it('cycles equal nodes in order and skips excluded ones', () => {
    const [a, b, c] = [node('a'), node('b'), node('c')];
    const sel = new RoundRobinSelector();
    assert.equal(Array.from({ length: 6 }, () => sel.select([a!, b!, c!])!.name).join(''), 'abcabc');
    assert.equal(sel.select([a!, b!, c!], new Set([a!, b!])), c);
  });
});
