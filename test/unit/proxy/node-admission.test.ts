import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeSlot } from '../../../src/nodes/node-slot.js';
import { HEADROOM_GRACE_MS, NodeAdmission, OTHERS_SEEN_MS, type Admitted, type Slot } from '../../../src/proxy/node-admission.js';
import { FakeClock } from '../../support/fake-clock.js';

const node = { name: 'n1' } as unknown as ClusterNode;
const other = { name: 'n2' } as unknown as ClusterNode;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const slotOf = (a: Admitted): Slot => {
  assert.equal(a.kind, 'slot');
  return (a as { slot: Slot }).slot;
};

function setup(size = 10, nodeShare = 0.25, busy: (c: string) => boolean = () => false) {
  const clock = new FakeClock();
  // A node set's slots, with `members` deciding who is in the set (a node leaving drops its data).
  const slots: Array<NodeSlot<unknown>> = [];
  const members = new Set<ClusterNode>([node, other]);
  const nodes = {
    slot: <T>(init: (n: ClusterNode) => T, dispose?: (v: T, n: ClusterNode) => void) => {
      const s = new NodeSlot((n) => members.has(n), init, dispose);
      slots.push(s as NodeSlot<unknown>);
      return s;
    },
  };
  const leave = (n: ClusterNode) => {
    members.delete(n);
    for (const s of slots) s.drop(n);
  };
  const admission = new NodeAdmission(nodes, { sizes: { fast: size, upload: size }, nodeShare, queueTimeout: 30_000 }, clock, busy);
  return { clock, admission, leave };
}

describe('node admission: fair shares, not refusals', () => {
  // Issue 18: one address (a NAT'ed CI farm) got 429 for pulls beyond its node share while the
  // node had connections to spare.
  it('while a pool has room, one client gets slots far beyond its share; the last tenth goes to others first', () => {
    const { admission } = setup(10);
    const held: Slot[] = [];
    for (let i = 0; i < 9; i++) held.push(admission.tryTake(node, 'fast', 'farm')!);
    assert.ok(held.every((s) => s !== undefined), 'nine of ten slots, though its share is two');
    assert.equal(admission.tryTake(node, 'fast', 'farm'), undefined, 'the tenth is not taken at once');
    assert.ok(admission.tryTake(node, 'fast', 'other'), 'another client gets it at once');
    assert.ok(admission.tryTake(node, 'upload', 'farm'), 'the upload budget is its own');
  });

  // Found in review: a heavy client was answered 503 after queueTimeout with a slot free.
  it('a heavy client gets the headroom after a short grace when nobody lighter wants it, while it holds less than the rest', async () => {
    const { admission, clock } = setup(10);
    for (let i = 0; i < 5; i++) admission.tryTake(node, 'fast', 'farm1');
    for (let i = 0; i < 4; i++) admission.tryTake(node, 'fast', 'farm2');
    const got: Admitted[] = [];
    void admission.wait([node], 'fast', 'farm1', () => {}).then((a) => got.push(a));
    await settle();
    assert.equal(got.length, 0, 'held back while a lighter client may still come');
    clock.advance(HEADROOM_GRACE_MS);
    await settle();
    assert.deepEqual(got.map((a) => a.kind), ['slot']);
  });

  // Found by a probe: one client's slow reads took the headroom after the grace, held every
  // connection of the node, and every other client waited out queueTimeout (503).
  it('while others use the pool, one client never holds its headroom: it stays free for the next client, however long the heavy one waits', async () => {
    const { admission, clock } = setup(10);
    admission.tryTake(node, 'fast', 'other')!.release();
    for (let i = 0; i < 9; i++) admission.tryTake(node, 'fast', 'farm');
    const got: Admitted[] = [];
    void admission.wait([node], 'fast', 'farm', () => {}).then((a) => got.push(a));
    clock.advance(HEADROOM_GRACE_MS * 5);
    await settle();
    assert.equal(got.length, 0, 'the last tenth is not lent to the client holding the rest');
    assert.ok(admission.tryTake(node, 'fast', 'late'), 'a client that comes later gets it at once');
    clock.advance(30_000);
    await settle();
    assert.deepEqual(got.map((a) => a.kind), ['timeout'], 'the heavy client alone pays for what it holds');
  });

  // Found by a second probe: a client alone on the pool (everyone behind one NAT, or behind an
  // outer balancer that hides their addresses) was refused with the last tenth idle.
  it('a client alone on the pool gets its last tenth after the grace, and so again once others are gone a while', async () => {
    const { admission, clock } = setup(10);
    for (let i = 0; i < 9; i++) admission.tryTake(node, 'fast', 'farm');
    const got: Admitted[] = [];
    void admission.wait([node], 'fast', 'farm', () => {}).then((a) => got.push(a));
    clock.advance(HEADROOM_GRACE_MS);
    await settle();
    assert.deepEqual(got.map((a) => a.kind), ['slot'], 'nobody else uses the pool');
    const later = setup(10);
    later.admission.tryTake(node, 'fast', 'other')!.release();
    for (let i = 0; i < 9; i++) later.admission.tryTake(node, 'fast', 'farm');
    later.clock.advance(OTHERS_SEEN_MS);
    const after: Admitted[] = [];
    void later.admission.wait([node], 'fast', 'farm', () => {}).then((a) => after.push(a));
    later.clock.advance(HEADROOM_GRACE_MS);
    await settle();
    assert.deepEqual(after.map((a) => a.kind), ['slot'], 'the other client has not come for a minute');
  });

  // Found in review: with one connection per worker (a small budget over many cores), a busy
  // client alone was never given the slot, idle, and waited out queueTimeout.
  it('a pool of under ten has no tenth to keep: a heavy client alone gets its last slot after the grace', async () => {
    const { admission, clock } = setup(1, 0.25, () => true);
    assert.equal(admission.tryTake(node, 'fast', 'busy'), undefined, 'not at once: a lighter client may come');
    const got: Admitted[] = [];
    void admission.wait([node], 'fast', 'busy', () => {}).then((a) => got.push(a));
    clock.advance(HEADROOM_GRACE_MS);
    await settle();
    assert.deepEqual(got.map((a) => a.kind), ['slot']);
  });

  it('a heavy client waits behind lighter ones, in arrival order within each kind, and is never refused while it waits', async () => {
    const { admission } = setup(4, 0.5);
    const farm = [admission.tryTake(node, 'fast', 'farm')!, admission.tryTake(node, 'fast', 'farm')!, admission.tryTake(node, 'fast', 'farm')!];
    const light1 = admission.tryTake(node, 'fast', 'light1')!;
    const order: string[] = [];
    const waits = ['farm', 'light2', 'light3'].map((c) => admission.wait([node], 'fast', c, () => {}).then((a) => (order.push(c), slotOf(a))));
    farm[0]!.release();
    await settle();
    assert.deepEqual(order, ['light2'], 'the freed slot goes to a light client, though the farm asked first');
    light1.release();
    await settle();
    assert.deepEqual(order, ['light2', 'light3']);
    farm[1]!.release();
    farm[2]!.release();
    await settle();
    assert.deepEqual(order, ['light2', 'light3', 'farm'], 'the farm is served once lighter clients are');
    await Promise.all(waits);
  });

  // Found in review: a queued request waited only on its first node while another was idle.
  it('a request that may go to several nodes waits on all of them: the first slot any frees is taken, and only one', async () => {
    const { admission } = setup(1);
    const onA = admission.tryTake(node, 'fast', 'x')!;
    const onB = admission.tryTake(other, 'fast', 'y')!;
    const waited = admission.wait([node, other], 'fast', 'z', () => {});
    onB.release();
    const got = await waited;
    assert.deepEqual([got.kind, (got as { node: ClusterNode }).node], ['slot', other]);
    onA.release();
    assert.ok(admission.tryTake(node, 'fast', 'w'), 'the other node’s slot was not taken too');
  });

  it('counts a client with more requests in flight than requestsPerClient as heavy on every node', () => {
    const { admission } = setup(10, 1, (c) => c === 'busy');
    for (let i = 0; i < 9; i++) assert.ok(admission.tryTake(node, 'fast', 'busy'));
    assert.equal(admission.tryTake(node, 'fast', 'busy'), undefined, 'heavy: the headroom is not its at once');
  });

  it('ends a wait: timeout after queueTimeout, left when the client goes, gone when its only node leaves (so it fails over); nothing leaks', async () => {
    const { admission, clock, leave } = setup(1);
    const only = admission.tryTake(node, 'fast', 'a')!;
    let stop!: () => void;
    const left = admission.wait([node], 'fast', 'b', (s) => (stop = s));
    const timedOut = admission.wait([node], 'fast', 'c', () => {});
    assert.equal(admission.queued(node), 2);
    stop();
    assert.equal((await left).kind, 'left');
    clock.advance(30_000);
    assert.equal((await timedOut).kind, 'timeout');
    assert.equal(admission.queued(node), 0);
    const busyOther = admission.tryTake(other, 'fast', 'd')!;
    const gone = admission.wait([other], 'fast', 'e', () => {});
    leave(other);
    assert.equal((await gone).kind, 'gone');
    busyOther.release();
    only.release();
    assert.ok(admission.tryTake(node, 'fast', 'f'), 'the slot is free again');
  });
});
