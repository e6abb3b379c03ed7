import assert from 'node:assert/strict';
import { it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { ActiveHealthChecker } from '../../../src/health/active-checker.js';
import { NodeHealth } from '../../../src/health/node-health.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

it('checks every node on the interval with jitter, and stops when told', async () => {
  const config = validateConfig({ nodes: [{ name: 'a', url: 'http://127.0.0.1:1' }], health: { interval: '1s' } });
  const clock = new FakeClock();
  const nodes = new NodeSet(config, clock);
  const calls: number[] = [];
  let answer = true;
  const probe = async (_n: ClusterNode) => {
    calls.push(clock.now());
    return { ok: answer, detail: answer ? 'ok' : 'down' };
  };
  const checker = new ActiveHealthChecker(nodes, new NodeHealth(nodes, config.health, clock), probe, 1000, clock, () => 1);
  const t0 = clock.now();
  checker.start();
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(nodes.get('a')!.state, 'healthy', 'the first check runs at start');
  // random() = 1 gives the longest jitter: 1.1 intervals.
  clock.advance(1099);
  assert.equal(calls.length, 1);
  clock.advance(1);
  assert.equal(calls.length, 2);
  answer = false;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(1100);
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(nodes.get('a')!.state, 'unhealthy');
  assert.deepEqual(calls.map((c) => c - t0), [0, 1100, 2200, 3300, 4400]);
  checker.stop();
  assert.equal(clock.pending, 0);
});
