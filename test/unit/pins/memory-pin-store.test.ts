import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { FakeClock } from '../../support/fake-clock.js';

it('keeps entries for their TTL only', async () => {
  const clock = new FakeClock();
  const store = new MemoryPinStore(clock, 10);
  await store.set('a', 'n1', 1000);
  clock.advance(999);
  assert.equal(await store.get('a'), 'n1');
  clock.advance(1);
  assert.equal(await store.get('a'), undefined);
  assert.equal(store.size(), 0, 'an expired entry is dropped when read');
});

it('lets the first writer win set-if-absent until the entry expires', async () => {
  const clock = new FakeClock();
  const store = new MemoryPinStore(clock, 10);
  assert.equal(await store.setIfAbsent('k', 'n1', 1000), 'n1');
  assert.equal(await store.setIfAbsent('k', 'n2', 1000), 'n1');
  clock.advance(1000);
  assert.equal(await store.setIfAbsent('k', 'n2', 1000), 'n2');
});

it('stays within its bound, dropping the least recently written or read entry', async () => {
  const store = new MemoryPinStore(new FakeClock(), 3);
  for (const k of ['a', 'b', 'c']) await store.set(`client:${k}`, k, 60_000);
  await store.set('client:a', 'a2', 60_000); // rewritten: now the newest
  await store.set('client:d', 'd', 60_000);
  assert.equal(store.size(), 3);
  assert.equal(await store.get('client:b'), undefined);
  assert.equal(await store.get('client:a'), 'a2');
  assert.equal(await store.get('client:d'), 'd');
});

// Issue 18: made-up logins made client pins in the same bounded cache as upload pins; a flood of
// them pushed real uploads' pins out and the uploads failed with BLOB_UPLOAD_INVALID.
it('keeps each kind of pin in its own bounded space: no flood of one kind evicts another, evictions counted', async () => {
  const store = new MemoryPinStore(new FakeClock(), 100);
  for (let i = 0; i < 20; i++) await store.set(`upload:u${i}`, 'n1', 3_600_000);
  for (let i = 0; i < 5; i++) await store.set(`session:s${i}`, 'n2', 1_800_000);
  for (let i = 0; i < 100_000; i++) await store.set(`client:c${i}`, 'n3', 1_800_000);
  for (let i = 0; i < 100_000; i++) await store.set(`visitor:k${i}`, 'n3', 1_800_000);
  for (let i = 0; i < 20; i++) assert.equal(await store.get(`upload:u${i}`), 'n1', `upload u${i} kept`);
  for (let i = 0; i < 5; i++) assert.equal(await store.get(`session:s${i}`), 'n2', `session s${i} kept`);
  assert.deepEqual([store.sizeOf('upload'), store.sizeOf('session'), store.sizeOf('client'), store.sizeOf('visitor')], [20, 5, 100, 100]);
  assert.deepEqual(store.evictions, { upload: 0, session: 0, visitor: 99_900, client: 99_900 });
});

it('evicts the least recently used pin of a full space: a pin in use stays', async () => {
  const store = new MemoryPinStore(new FakeClock(), 3);
  for (const k of ['a', 'b', 'c']) await store.set(`upload:${k}`, k, 60_000);
  assert.equal(await store.get('upload:a', 60_000), 'a'); // in use: now the most recent
  await store.set('upload:d', 'd', 60_000);
  assert.equal(await store.get('upload:b'), undefined, 'b was the least recently used');
  assert.equal(await store.get('upload:a'), 'a');
  assert.equal(store.evictions.upload, 1);
});
