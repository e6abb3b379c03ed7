import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrafficHistory } from '../../../src/admin/traffic-history.js';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup() {
  const clock = new FakeClock();
  const nodes = new NodeSet(validateConfig({ nodes: [{ name: 'a', url: 'http://127.0.0.1:1' }, { name: 'b', url: 'http://127.0.0.1:2' }] }), clock);
  const history = new TrafficHistory(nodes, clock);
  history.start();
  const traffic = (name: string, n: number, failed = 0) => {
    for (let i = 0; i < n; i++) nodes.get(name)!.traffic.begin()(i < failed);
  };
  return { clock, nodes, history, traffic };
}

describe('traffic history (the status page charts)', () => {
  it('keeps each node\'s requests and failures per second for every 10 s step, the step under way last', () => {
    const { clock, history, traffic } = setup();
    traffic('a', 50, 10);
    clock.advance(10_000);
    traffic('a', 5);
    clock.advance(5_000);
    const doc = history.document();
    const a = doc.nodes.find((n) => n.name === 'a')!;
    assert.deepEqual(a.points.map((p) => [p[1], p[2]]), [[5, 1], [1, 0]]);
    assert.deepEqual(doc.nodes.find((n) => n.name === 'b')!.points.map((p) => p[1]), [0, 0]);
    history.stop();
  });

  it('forgets what is older than 15 minutes, and marks state changes and flags on the node', () => {
    const { clock, nodes, history } = setup();
    nodes.setCheck(nodes.get('b')!, 'unhealthy', 'down');
    nodes.setFlag(nodes.get('b')!, { code: 'NODE_CLOCK_SKEW', message: 'm', since: 'now', fix: 'f', severity: 'warning' });
    let doc = history.document();
    assert.deepEqual(doc.events.map((e) => [e.node, e.kind, e.text]), [['b', 'state', 'unknown to unhealthy: down'], ['b', 'flag', 'NODE_CLOCK_SKEW raised']]);
    clock.advance(16 * 60_000);
    doc = history.document();
    assert.equal(doc.events.length, 0);
    assert.equal(doc.nodes[0]!.points.length, 90, '15 minutes of 10 s steps');
    assert.ok(doc.nodes[0]!.points.every((p) => p[0] > doc.now - 15 * 60_000));
    history.stop();
  });
});
