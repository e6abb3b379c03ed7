import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createLoggers } from '../../../src/log/loggers.js';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { RedisPinStore } from '../../../src/pins/redis-pin-store.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';
import { deadPort } from '../../support/servers.js';

/** A store whose Redis never answers: its pins live in the near cache and `fallback` (the instance's memory store). */
async function storeWithoutRedis(t: { after: (fn: () => unknown) => void }, nearCacheMax: number, fallback = new MemoryPinStore(new FakeClock(), nearCacheMax)) {
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: new LogSink() });
  const store = new RedisPinStore(
    { url: `redis://127.0.0.1:${await deadPort()}/0`, keyPrefix: 't:', timeout: 100, nearCacheTtl: 5_000, nearCacheMax, maxEntries: 1000, speaksForInstance: true },
    new FakeClock(),
    logger,
    fallback,
  );
  t.after(() => store.close());
  return store;
}

it('keeps the near cache within nearCacheMax per space; with Redis down, client pins never push out upload pins', async (t) => {
  const store = await storeWithoutRedis(t, 2);
  await store.set('upload:a', 'n1', 60_000);
  await store.set('upload:b', 'n2', 60_000);
  await store.set('upload:c', 'n3', 60_000);
  assert.equal(store.size(), 2, 'the near cache is bounded');
  for (let i = 0; i < 500; i++) await store.set(`client:${i}`, 'n1', 60_000);
  assert.equal(store.size(), 4, 'bounded per space however many keys');
  assert.deepEqual([await store.get('upload:b'), await store.get('upload:c')], ['n2', 'n3'], 'client pins never push out upload pins');
});

it('with Redis down, pins go to the instance memory store: a second store on it (another request worker) reads them', async (t) => {
  const shared = new MemoryPinStore(new FakeClock(), 100);
  const one = await storeWithoutRedis(t, 100, shared);
  const other = await storeWithoutRedis(t, 100, shared);
  await one.set('upload:u1', 'n2', 60_000);
  assert.equal(await other.get('upload:u1', 60_000), 'n2', 'the other worker keeps the upload on its node');
  assert.equal(await other.setIfAbsent('client:alice', 'n3', 60_000), 'n3');
  assert.equal(await one.setIfAbsent('client:alice', 'n1', 60_000), 'n3', 'the first writer wins across workers, as in Redis');
  await one.delete('upload:u1');
  assert.equal(await other.get('upload:u1'), undefined);
});
