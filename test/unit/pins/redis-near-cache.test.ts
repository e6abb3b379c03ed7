import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createLoggers } from '../../../src/log/loggers.js';
import { RedisPinStore } from '../../../src/pins/redis-pin-store.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';
import { deadPort } from '../../support/servers.js';

/** A store whose Redis never answers: every read is the near cache's alone. */
async function storeWithoutRedis(t: { after: (fn: () => unknown) => void }, nearCacheMax: number) {
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: new LogSink() });
  const store = new RedisPinStore(
    { url: `redis://127.0.0.1:${await deadPort()}/0`, keyPrefix: 't:', timeout: 100, nearCacheTtl: 5_000, nearCacheMax, maxEntries: 1000 },
    new FakeClock(),
    logger,
  );
  t.after(() => store.close());
  return store;
}

it('keeps the near cache within nearCacheMax, evicting the least recently used pin', async (t) => {
  const store = await storeWithoutRedis(t, 2);
  await store.set('upload:a', 'n1', 60_000);
  await store.set('upload:b', 'n2', 60_000);
  assert.equal(await store.get('upload:a'), 'n1'); // a used again: b is now the least recently used
  await store.set('upload:c', 'n3', 60_000);
  assert.equal(store.size(), 2);
  assert.equal(await store.get('upload:b'), undefined, 'b evicted');
  assert.equal(await store.get('upload:a'), 'n1', 'a kept: the cache is not emptied when full');
  assert.equal(await store.get('upload:c'), 'n3');
  for (let i = 0; i < 500; i++) await store.set(`client:${i}`, 'n1', 60_000);
  assert.equal(store.size(), 4, 'bounded per space however many keys');
  assert.deepEqual([await store.get('upload:a'), await store.get('upload:c')], ['n1', 'n3'], 'client pins never push out upload pins (Redis is down: the near cache is all there is)');
});
