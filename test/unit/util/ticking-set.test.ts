import assert from 'node:assert/strict';
import { it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { TickingSet, type Ticked } from '../../../src/util/ticking-set.js';
import { v8Collector } from '../../../src/util/v8-collector.js';
import { FakeClock } from '../../support/fake-clock.js';

interface Item extends Ticked {
  name: string;
}

const item = (name: string): Item => ({ name, tickIndex: -1 });

it('holds what was added until it is deleted, in any order', () => {
  const set = new TickingSet<Item>(new FakeClock(), 100, () => {});
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item);
  const removeA = set.add(a!);
  set.add(b!);
  set.add(c!);
  set.add(d!);
  set.delete(b!); // from the middle: the last takes its place
  removeA();
  assert.equal(set.size, 2);
  assert.deepEqual([...set.held()].map((i) => i.name).sort(), ['c', 'd']);
  assert.ok(!set.has(a!) && !set.has(b!) && set.has(c!) && set.has(d!));
  set.delete(b!); // not held: nothing happens
  removeA();
  assert.equal(set.size, 2);
  set.delete(c!);
  set.delete(d!);
  assert.equal(set.size, 0);
});

it('refuses an item it already holds: its index lives on the item', () => {
  const set = new TickingSet<Item>(new FakeClock(), 100, () => {});
  const other = new TickingSet<Item>(new FakeClock(), 100, () => {});
  const a = item('a');
  const remove = set.add(a);
  assert.throws(() => set.add(a), /already held/);
  assert.throws(() => other.add(a), /already held/);
  remove();
  other.add(a);
  assert.ok(other.has(a) && !set.has(a));
});

it('ticks only while it holds something; a tick may delete as it goes, and is not given what it deleted', () => {
  const clock = new FakeClock();
  const ticks: string[][] = [];
  const [x, keep, y] = ['x', 'keep', 'y'].map(item);
  const set: TickingSet<Item> = new TickingSet<Item>(clock, 100, (items) => {
    const seen: string[] = [];
    for (const i of items) {
      seen.push(i.name);
      // Deleting during the tick: the item in hand, and one the tick has not reached yet.
      if (i === x) {
        set.delete(x!);
        set.delete(y!);
      }
    }
    ticks.push(seen);
  });
  assert.equal(clock.pending, 0, 'an empty set has no timer');
  set.add(x!);
  set.add(keep!);
  set.add(y!);
  assert.equal(clock.pending, 1, 'one timer for all');
  clock.advance(100);
  assert.deepEqual(ticks, [['x', 'keep']], 'y, deleted before it was reached, is not given');
  assert.deepEqual([...set.held()].map((i) => i.name), ['keep']);
  clock.advance(100);
  assert.equal(ticks.length, 2);
  set.stop();
  assert.equal(clock.pending, 0);
  assert.equal(set.size, 0);
});

it('leaves nothing it held for the young generation to promote once deleted', () => {
  // A JS Set here was rehashed as its size swung, and V8 links each old table to its successor
  // with the entries still in it: once one table was old, deleted items were kept alive by the
  // dead table, promoted, and whole requests with them, until the next full collection.
  const gc = v8Collector()!;
  const set = new TickingSet<Ticked & { payload?: number[] }>(new FakeClock(), 1000, () => {});
  // A steady few in flight, long enough for the set's storage to reach the old generation.
  for (let i = 0; i < 4; i++) set.add({ tickIndex: -1 });
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  // Bursts: the storage grows, then shrinks back as each burst ends; about 4 MB in all.
  const burst = (): void => {
    const removers: Array<() => void> = [];
    for (let i = 0; i < 200; i++) removers.push(set.add({ tickIndex: -1, payload: new Array<number>(512).fill(i) }));
    for (const remove of removers) remove();
  };
  for (let round = 0; round < 5; round++) burst();
  const oldSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
  const before = oldSpace();
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  const promoted = oldSpace() - before;
  // A Set promoted about 1.8 MB of the 4 MB here; the array, nothing.
  assert.ok(promoted < 512 * 1024, `${(promoted / 1024).toFixed(0)} KiB of deleted items reached the old generation`);
});
