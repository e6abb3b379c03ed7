import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeSlot } from '../../../src/nodes/node-slot.js';
import { NodeAdmission, type Slot } from '../../../src/proxy/node-admission.js';
import { FakeClock } from '../../support/fake-clock.js';

const node = { name: 'n1' } as unknown as ClusterNode;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(size = 10, nodeShare = 0.25, busy: (c: string) => boolean = () => false) {
  const clock = new FakeClock();
  // Every node is a member here: slots hold their data as a node set's would.
  const slots = { slot: <T>(init: (n: ClusterNode) => T, dispose?: (v: T, n: ClusterNode) => void) => new NodeSlot(() => true, init, dispose) };
  const admission = new NodeAdmission(slots, { sizes: { fast: size, upload: size }, nodeShare, queueTimeout: 30_000 }, clock, busy);
  return { clock, admission };
}

describe('node admission: fair shares, not refusals', () => {
  // Issue 18: one address (a NAT'ed CI farm) got 429 for pulls beyond its node share while the
  // node had connections to spare.
  it('while a pool has room, one client gets slots far beyond its share; only the last tenth is kept for others', () => {
    const { admission } = setup(10);
    const held: Slot[] = [];
    for (let i = 0; i < 9; i++) held.push(admission.tryTake(node, 'fast', 'farm')!);
    assert.ok(held.every((s) => s !== undefined), 'nine of ten slots, though its share is two');
    assert.equal(admission.tryTake(node, 'fast', 'farm'), undefined, 'the tenth stays for someone else');
    assert.ok(admission.tryTake(node, 'fast', 'other'), 'another client gets it at once');
    assert.equal(admission.tryTake(node, 'upload', 'farm') !== undefined, true, 'the upload budget is its own');
  });

  it('a heavy client waits behind lighter ones, in arrival order within each kind, and is never refused while it waits', async () => {
    const { admission } = setup(4, 0.5);
    const farm = [admission.tryTake(node, 'fast', 'farm')!, admission.tryTake(node, 'fast', 'farm')!, admission.tryTake(node, 'fast', 'farm')!];
    const light1 = admission.tryTake(node, 'fast', 'light1')!;
    const order: string[] = [];
    const waits = [
      admission.wait(node, 'fast', 'farm', () => {}).then((s) => (order.push('farm'), s)),
      admission.wait(node, 'fast', 'light2', () => {}).then((s) => (order.push('light2'), s)),
      admission.wait(node, 'fast', 'light3', () => {}).then((s) => (order.push('light3'), s)),
    ];
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
    const slots = await Promise.all(waits);
    assert.ok(slots.every((s) => s !== undefined));
  });

  it('counts a client with more requests in flight than requestsPerClient as heavy on every node', () => {
    const { admission } = setup(10, 1, (c) => c === 'busy');
    for (let i = 0; i < 9; i++) assert.ok(admission.tryTake(node, 'fast', 'busy'));
    assert.equal(admission.tryTake(node, 'fast', 'busy'), undefined, 'heavy: the headroom is not for it');
  });

  it('answers a wait that found no slot within queueTimeout with nothing (503 upstream), and lets a leaving client out of the queue', async () => {
    const { admission, clock } = setup(1);
    const only = admission.tryTake(node, 'fast', 'a')!;
    let leave!: () => void;
    const cancelled = admission.wait(node, 'fast', 'b', (stop) => (leave = stop));
    const timedOut = admission.wait(node, 'fast', 'c', () => {});
    assert.equal(admission.queued(node), 2);
    leave();
    assert.equal(await cancelled, undefined);
    clock.advance(30_000);
    assert.equal(await timedOut, undefined);
    assert.equal(admission.queued(node), 0);
    only.release();
    assert.ok(admission.tryTake(node, 'fast', 'd'), 'nothing leaked: the slot is free again');
  });
});
