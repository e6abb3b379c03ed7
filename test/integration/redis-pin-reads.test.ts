import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Redis } from 'ioredis';
import { createLoggers } from '../../src/log/loggers.js';
import { MemoryPinStore } from '../../src/pins/memory-pin-store.js';
import { RedisPinStore } from '../../src/pins/redis-pin-store.js';
import { FakeClock } from '../support/fake-clock.js';
import { LogSink } from '../support/log-sink.js';
import { startRedis } from '../support/redis.js';

/** Reads (GET and GETEX) the real redis-server has run since start. */
async function reads(admin: Redis): Promise<number> {
  const info = await admin.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(get|getex):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

/** A real redis-server, a client of its own to look at it, and a store on it (near cache 5 s), connected; all stopped after the test. */
async function storeOnRedis(t: { after: (fn: () => unknown) => void }, timeout: number) {
  const server = await startRedis();
  t.after(() => server.proc.stop());
  const admin = new Redis(server.url);
  // It sees Redis go away in the outage test, as the store does.
  admin.on('error', () => {});
  t.after(() => admin.quit());
  const logs = new LogSink();
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: logs });
  const clock = new FakeClock();
  const memory = new CountedMemory(clock, 100);
  const store = new RedisPinStore({ url: server.url, keyPrefix: 'r:', timeout, nearCacheTtl: 5_000, nearCacheMax: 100, maxEntries: 100, speaksForInstance: true }, clock, logger, memory);
  t.after(() => store.close());
  await logs.waitFor((l) => l.event === 'redis_connected');
  return { admin, clock, store, server, logs, memory };
}

/** The instance's memory store, counting the reads it is asked for. */
class CountedMemory extends MemoryPinStore {
  reads = 0;
  override get(key: string, renewMs?: number): string | undefined {
    this.reads++;
    return super.get(key, renewMs);
  }
}

it('Redis pins: made while Redis is away, they are written into it when it is back; only then, for a while, is a key Redis lacks looked for in memory', async (t) => {
  const { admin, clock, store, server, logs, memory } = await storeOnRedis(t, 200);
  for (let i = 0; i < 20; i++) assert.equal(await store.get(`upload:none-${i}`, 60_000), undefined);
  assert.equal(memory.reads, 0, 'Redis healthy: memory never asked');
  server.proc.kill('SIGKILL');
  await logs.waitFor((l) => l.event === 'redis_down');
  await store.set('upload:during', 'n2', 60_000, 'user:alice');
  assert.equal(await store.get('upload:during', 60_000), 'n2');
  clock.advance(20_000);
  const again = await startRedis(server.port);
  t.after(() => again.proc.stop());
  await logs.waitFor((l) => l.event === 'redis_pins_restored', 10_000);
  assert.equal(await admin.get('r:upload:during'), 'n2', 'in Redis now, for other instances too');
  const left = await admin.pttl('r:upload:during');
  assert.ok(left > 35_000 && left <= 40_000, `with the time it had left (${left} ms)`);
  assert.equal(memory.size(), 0, 'and no longer in memory');
  const before = memory.reads;
  assert.equal(await store.get('upload:none-after', 60_000), undefined);
  assert.equal(memory.reads, before + 1, 'right after, a key Redis lacks is looked for in memory');
  clock.advance(10_001);
  assert.equal(await store.get('upload:none-later', 60_000), undefined);
  assert.equal(memory.reads, before + 1, 'and after a while no longer');
});

it('Redis pins: an anonymous client is asked for once a second, not on each request, and reads that miss together share one command', async (t) => {
  const { admin, clock, store } = await storeOnRedis(t, 500);
  const base = await reads(admin);

  // Twenty requests of an anonymous client at once, then twenty more within the second.
  const first = await Promise.all(Array.from({ length: 20 }, () => store.get('client:anon', 30_000, true)));
  assert.deepEqual(first, Array(20).fill(undefined));
  for (let i = 0; i < 20; i++) assert.equal(await store.get('client:anon', 30_000, true), undefined);
  assert.equal((await reads(admin)) - base, 1, 'one read for forty requests');
  clock.advance(1_001);
  await store.get('client:anon', 30_000, true);
  assert.equal((await reads(admin)) - base, 2, 'asked again once the second is over');

  // A named client's "no pin" is asked for each time (its login may have pinned it a moment ago elsewhere).
  for (let i = 0; i < 3; i++) assert.equal(await store.get('client:named', 30_000), undefined);
  assert.equal((await reads(admin)) - base, 5);

  // A pin another instance writes is found by the next read.
  await admin.set('r:client:named', 'n2', 'PX', 60_000);
  assert.equal(await store.get('client:named', 30_000), 'n2');
});

it('Redis pins: a read sent before a write does not leave its answer in the near cache', async (t) => {
  // Its timeout outlasts the pause below.
  const { admin, store } = await storeOnRedis(t, 2_000);
  await admin.set('r:client:moved', 'n1', 'PX', 60_000);
  // Redis holds every client's commands for 200 ms: the read is on its way when the write is made.
  await admin.call('CLIENT', 'PAUSE', '200', 'ALL');
  const before = store.get('client:moved', 30_000);
  const written = store.set('client:moved', 'n2', 60_000);
  assert.equal(await before, 'n1', 'the read was sent before the write');
  await written;
  assert.equal(await admin.get('r:client:moved'), 'n2');
  assert.equal(await store.get('client:moved', 30_000), 'n2', "the near cache kept the write, not the earlier read's answer");
});
