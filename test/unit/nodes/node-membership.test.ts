import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup() {
  const clock = new FakeClock();
  const cfg = validateConfig({
    nodes: [
      { name: 'a', url: 'http://127.0.0.1:1' },
      { name: 'b', url: 'http://127.0.0.1:2' },
      { name: 'c', url: 'http://127.0.0.1:3' },
    ],
    sticky: { ttl: { upload: '60s' } },
  });
  const nodes = new NodeSet(cfg, clock);
  for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
  const left: string[] = [];
  nodes.on('removed', (n) => left.push(n.name));
  return { clock, nodes, left };
}
const names = (ns: readonly { name: string }[]) => ns.map((n) => n.name);

describe('node slots: components\' data about a node goes with it', () => {
  // Issue 19: eight components kept per-node tables, cleaned by a hand-written list of forget calls.
  it('drops (and disposes of) every slot\'s value once a removed node has left, not before, and a closed slot is let go', () => {
    const { clock, nodes, left } = setup();
    const disposed: string[] = [];
    const counters = nodes.slot(() => ({ n: 0 }), (_, node) => disposed.push(`counters:${node.name}`));
    const pools = nodes.slot((node) => `pool of ${node.name}`, (v) => disposed.push(v));
    const b = nodes.get('b')!;
    counters.get(b).n = 7;
    pools.get(b);
    const ends = b.traffic.begin();
    nodes.remove('b');
    clock.advance(120_000);
    assert.deepEqual([counters.peek(b)?.n, disposed], [7, []], 'kept while a request is on it');
    ends(false);
    clock.advance(62_000);
    assert.deepEqual(left, ['b']);
    assert.deepEqual(disposed.sort(), ['counters:b', 'pool of b']);
    assert.equal(counters.peek(b), undefined);
    // A request finishing on the node that left gets a value that is not kept (and is disposed of).
    assert.equal(counters.get(b).n, 0);
    assert.equal(counters.peek(b), undefined);
    const a = nodes.get('a')!;
    counters.get(a).n = 1;
    counters.close();
    assert.equal(counters.peek(a), undefined, 'a closed slot holds nothing');
  });
});

describe('node set membership (config reload)', () => {
  it('a new node joins unknown and takes traffic once its check passes', () => {
    const { nodes } = setup();
    const added: string[] = [];
    nodes.on('added', (n) => added.push(n.name));
    const d = nodes.upsert({ name: 'd', url: 'http://127.0.0.1:4', weight: 1 });
    assert.deepEqual(added, ['d']);
    assert.equal(d.state, 'unknown');
    assert.deepEqual(names(nodes.available()), ['a', 'b', 'c'], 'healthy nodes first: an unchecked node waits for its check');
    nodes.setCheck(d, 'healthy', 'ok');
    assert.deepEqual(names(nodes.available()), ['a', 'b', 'c', 'd']);
    assert.equal(nodes.get('d'), d);
  });

  it('a removed node drains, keeps serving what is in flight, and leaves once idle for removeAfterIdle', () => {
    const { clock, nodes, left } = setup();
    const b = nodes.get('b')!;
    const uploadEnds = b.traffic.begin(); // an upload still streaming
    nodes.remove('b');
    assert.equal(b.state, 'draining');
    assert.match(b.stateWhy, /removed from the config/);
    assert.ok(nodes.isRemoved(b));
    assert.deepEqual(names(nodes.available()), ['a', 'c'], 'nothing new goes to it');
    assert.equal(nodes.get('b'), b, 'pins naming it still find it');
    clock.advance(120_000);
    assert.deepEqual(left, [], 'not while a request is in flight');
    uploadEnds(false);
    b.traffic.begin()(false); // the upload's last request just finished
    clock.advance(59_000);
    assert.deepEqual(left, [], 'the idle time counts from its last request');
    clock.advance(2_000);
    assert.deepEqual(left, ['b']);
    assert.deepEqual(names(nodes.all), ['a', 'c']);
    assert.equal(nodes.get('b'), undefined);
    assert.equal(clock.pending, 0, 'no timer left behind');
  });

  it('a removed node put back before it left is kept, with its state', () => {
    const { clock, nodes, left } = setup();
    const b = nodes.get('b')!;
    nodes.remove('b');
    const back = nodes.upsert({ name: 'b', url: 'http://127.0.0.1:2', weight: 1 });
    assert.equal(back, b);
    assert.equal(b.state, 'healthy');
    clock.advance(600_000);
    assert.deepEqual(left, []);
    assert.deepEqual(names(nodes.all), ['a', 'b', 'c']);
  });

  it('a new weight applies to the same node; a new URL makes a new node under the name', () => {
    const { clock, nodes, left } = setup();
    const a = nodes.get('a')!;
    assert.equal(nodes.upsert({ name: 'a', url: 'http://127.0.0.1:1', weight: 5 }), a);
    assert.equal(a.weight, 5);
    const onOld = a.traffic.begin();
    const a2 = nodes.upsert({ name: 'a', url: 'http://127.0.0.1:9', weight: 5 });
    assert.notEqual(a2, a);
    assert.equal(nodes.get('a'), a2);
    assert.deepEqual(names(nodes.all), ['a', 'b', 'c']);
    assert.equal(nodes.has(a), false, 'the old node left the set at once');
    assert.deepEqual(nodes.urls().sort(), ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3', 'http://127.0.0.1:9'], 'its address is still rewritten while requests are on it');
    // Reports about requests still on the old node are ignored, not thrown.
    nodes.setReachable(a, false);
    assert.equal(nodes.eject(a, clock.now() + 1000, 'x'), false);
    assert.equal(nodes.conditionsOf(a).drained, true);
    clock.advance(5_000);
    assert.deepEqual(left, [], "others forget it only once nothing can report on it");
    onOld(false);
    clock.advance(1_000);
    assert.deepEqual(left, ['a']);
    assert.equal(nodes.urls().length, 3);
    assert.equal(clock.pending, 0, 'its pools were closed and the sweep stopped');
  });

  it('a drained node stays drained when its URL changes', () => {
    const { nodes } = setup();
    nodes.setDrained(nodes.get('b')!, true);
    const b2 = nodes.upsert({ name: 'b', url: 'http://127.0.0.1:20', weight: 1 });
    assert.equal(b2.state, 'draining');
    assert.ok(!nodes.available().includes(b2));
  });

  it('a removed node is never ejected: its pinned requests failing must not use up the cap', () => {
    const { clock, nodes } = setup();
    nodes.remove('a');
    assert.equal(nodes.eject(nodes.get('a')!, clock.now() + 1000, 'x'), false);
    assert.ok(nodes.eject(nodes.get('b')!, clock.now() + 1000, 'x'), 'the one slot is still free');
  });

  it('turning checks off clears their verdicts', () => {
    const { nodes } = setup();
    const b = nodes.get('b')!;
    nodes.setCheck(b, 'unhealthy', 'down');
    assert.equal(b.state, 'unhealthy');
    nodes.clearChecks();
    assert.equal(b.state, 'unknown');
    assert.deepEqual(names(nodes.available()), ['a', 'b', 'c'], 'nobody is held out, or in, by an old verdict');
  });

  it('removed nodes do not count toward the ejection cap', () => {
    const { clock, nodes } = setup();
    nodes.upsert({ name: 'd', url: 'http://127.0.0.1:4', weight: 1 });
    nodes.upsert({ name: 'e', url: 'http://127.0.0.1:5', weight: 1 });
    nodes.upsert({ name: 'f', url: 'http://127.0.0.1:6', weight: 1 });
    assert.equal(nodes.maxEjected(), 2);
    nodes.remove('d');
    nodes.remove('e');
    assert.equal(nodes.maxEjected(), 1);
    assert.ok(nodes.eject(nodes.get('a')!, clock.now() + 1000, 'x'));
    assert.equal(nodes.eject(nodes.get('b')!, clock.now() + 1000, 'x'), false);
  });
});

describe('routes a node is out of (health.componentRoutes)', () => {
  it('keeps a node out of those routes only, and sends the route to every node when none is left for it', () => {
    const { nodes } = setup();
    const [a, b, c] = nodes.all as [ReturnType<typeof nodes.get> & object, ReturnType<typeof nodes.get> & object, ReturnType<typeof nodes.get> & object];
    nodes.setRoutesOut(a, ['v2', 'upload'], 'registry: unhealthy');
    assert.deepEqual(names(nodes.availableFor('v2')), ['b', 'c']);
    assert.deepEqual(names(nodes.availableFor('ui')), ['a', 'b', 'c']);
    nodes.setRoutesOut(b, ['v2'], 'registry: unhealthy');
    nodes.setRoutesOut(c, ['v2'], 'registry: unhealthy');
    assert.deepEqual(names(nodes.availableFor('v2')), ['a', 'b', 'c'], 'fails open rather than refuse');
    assert.deepEqual(names(nodes.availableFor('upload')), ['b', 'c']);
    nodes.setRoutesOut(a, [], '');
    assert.deepEqual(names(nodes.availableFor('upload')), ['a', 'b', 'c']);
    // Checks turned off by a reload: no check is left to end them, so they end with the checks.
    nodes.clearChecks();
    assert.deepEqual(names(nodes.availableFor('v2')), ['a', 'b', 'c']);
    assert.deepEqual(nodes.conditionsOf(b).routesOut, []);
  });
});
