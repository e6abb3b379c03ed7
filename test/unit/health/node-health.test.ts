import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { CHECK_HISTORY, NodeHealth } from '../../../src/health/node-health.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

const config = validateConfig({
  nodes: [
    { name: 'a', url: 'http://127.0.0.1:1' },
    { name: 'b', url: 'http://127.0.0.1:2' },
  ],
  health: { healthyAfter: 2, unhealthyAfter: 3 },
});
const pass = { ok: true, detail: 'all components healthy' };
const fail = { ok: false, detail: 'registry: unhealthy' };

describe('node health', () => {
  let clock: FakeClock;
  let nodes: NodeSet;
  let health: NodeHealth;
  let a: ClusterNode;
  let changes: string[];

  beforeEach(() => {
    clock = new FakeClock();
    nodes = new NodeSet(config, clock);
    health = new NodeHealth(nodes, config.health, clock);
    a = nodes.get('a')!;
    changes = [];
    nodes.on('state', (c) => changes.push(`${c.node.name}:${c.from}->${c.to}`));
  });

  it('lets the first check decide for an unknown node', () => {
    health.recordCheck(a, pass);
    health.recordCheck(nodes.get('b')!, fail);
    assert.deepEqual(changes, ['a:unknown->healthy', 'b:unknown->unhealthy']);
  });

  it('tries unknown nodes only while no node is known healthy', () => {
    assert.deepEqual(nodes.available().map((n) => n.name), ['a', 'b']);
    health.recordCheck(a, pass);
    assert.deepEqual(nodes.available().map((n) => n.name), ['a']);
    health.recordCheck(a, { ok: false, detail: 'gone', hard: true });
    assert.deepEqual(nodes.available().map((n) => n.name), ['b'], 'b is still unknown: tried rather than nothing');
  });

  it('takes unhealthyAfter failures in a row to go down and healthyAfter passes to come back', () => {
    health.recordCheck(a, pass);
    health.recordCheck(a, fail);
    health.recordCheck(a, fail);
    health.recordCheck(a, pass); // the run is broken
    health.recordCheck(a, fail);
    health.recordCheck(a, fail);
    assert.equal(a.state, 'healthy');
    health.recordCheck(a, fail);
    assert.equal(a.state, 'unhealthy');
    assert.equal(a.stateWhy, '3 checks failed in a row: registry: unhealthy');
    health.recordCheck(a, pass);
    assert.equal(a.state, 'unhealthy');
    health.recordCheck(a, pass);
    assert.equal(a.state, 'healthy');
  });

  it('takes a node out at once when its connection is refused', () => {
    health.recordCheck(a, pass);
    health.recordCheck(a, { ok: false, detail: 'health check failed: ECONNREFUSED', hard: true });
    assert.equal(a.state, 'unhealthy');
  });

  it('ends a passive ejection when a check passes', () => {
    health.recordCheck(a, pass);
    assert.ok(nodes.eject(a, clock.now() + 60_000, 'test'));
    assert.equal(a.state, 'unhealthy');
    health.recordCheck(a, pass);
    assert.equal(a.state, 'healthy');
    assert.equal(nodes.isEjected(a), false);
  });

  it('marks a node that does not answer its checks as unreachable, and one that answers (even badly) as reachable', () => {
    health.recordCheck(a, { ok: false, detail: 'health check failed: ECONNREFUSED', hard: true, reached: false });
    assert.equal(nodes.conditionsOf(a).reachable, false);
    health.recordCheck(a, fail);
    assert.equal(nodes.conditionsOf(a).reachable, true);
  });

  it('never lets health override a drain', () => {
    health.recordCheck(a, pass);
    nodes.setDrained(a, true);
    assert.equal(a.state, 'draining');
    for (let i = 0; i < 3; i++) health.recordCheck(a, fail);
    assert.equal(a.state, 'draining');
    nodes.setDrained(a, false);
    assert.equal(a.state, 'unhealthy', 'back to what checks found meanwhile');
  });

  it('keeps the last CHECK_HISTORY results per node, oldest first, for the status page', () => {
    assert.deepEqual(health.history(a), []);
    for (let i = 0; i < CHECK_HISTORY + 5; i++) {
      health.recordCheck(a, i % 2 === 0 ? pass : fail);
      clock.advance(1000);
    }
    const h = health.history(a);
    assert.equal(h.length, CHECK_HISTORY, 'bounded');
    assert.equal(h[0]!.at, clock.now() - CHECK_HISTORY * 1000, 'the oldest ones were dropped');
    assert.deepEqual(h.at(-1), health.lastCheck(a));
    assert.deepEqual(h.slice(-2).map((r) => [r.ok, r.detail]), [[false, fail.detail], [true, pass.detail]]);
    assert.deepEqual(health.history(nodes.get('b')!), [], 'per node');
    nodes.remove(a.name);
    clock.advance(301_000);
    assert.equal(nodes.has(a), false);
    assert.deepEqual(health.history(a), [], 'a node that left the config takes its history with it');
  });
});
