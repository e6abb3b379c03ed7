import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MemoryStateStore } from '../../../src/state/memory-store.js';
import { FakeClock } from '../../support/fake-clock.js';

it('keeps entries for their TTL only', async () => {
  const clock = new FakeClock();
  const store = new MemoryStateStore(clock, 10);
  await store.set('a', 'n1', 1000);
  clock.advance(999);
  assert.equal(await store.get('a'), 'n1');
  clock.advance(1);
  assert.equal(await store.get('a'), undefined);
  assert.equal(store.size(), 0, 'an expired entry is dropped when read');
});

it('lets the first writer win set-if-absent until the entry expires', async () => {
  const clock = new FakeClock();
  const store = new MemoryStateStore(clock, 10);
  assert.equal(await store.setIfAbsent('k', 'n1', 1000), 'n1');
  assert.equal(await store.setIfAbsent('k', 'n2', 1000), 'n1');
  clock.advance(1000);
  assert.equal(await store.setIfAbsent('k', 'n2', 1000), 'n2');
});

it('stays within its bound, dropping the oldest-written entry', async () => {
  const store = new MemoryStateStore(new FakeClock(), 3);
  for (const k of ['a', 'b', 'c']) await store.set(k, k, 60_000);
  await store.set('a', 'a2', 60_000); // rewritten: now the newest
  await store.set('d', 'd', 60_000);
  assert.equal(store.size(), 3);
  assert.equal(await store.get('b'), undefined);
  assert.equal(await store.get('a'), 'a2');
  assert.equal(await store.get('d'), 'd');
});
