import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { PinOwners, pinOwner } from '../../../src/pins/pin-owners.js';
import { FakeClock } from '../../support/fake-clock.js';

it('a full upload space pushes out a pin of whoever holds the most: a flood costs its client alone', async () => {
  const store = new MemoryPinStore(new FakeClock(), 10);
  await store.set('upload:alice-1', 'n1', 60_000, 'user:alice@10.0.0.1');
  await store.set('upload:bob-1', 'n2', 60_000, 'user:bob@10.0.0.2');
  for (let i = 0; i < 100; i++) await store.set(`upload:mallory-${i}`, 'n3', 60_000, 'user:mallory@10.0.0.9');
  assert.equal(store.sizeOf('upload'), 10);
  assert.equal(store.get('upload:alice-1'), 'n1');
  assert.equal(store.get('upload:bob-1'), 'n2');
  assert.equal(store.get('upload:mallory-0'), undefined, 'the flood pushed out its own oldest');
  assert.equal(store.get('upload:mallory-99'), 'n3');
  // A newcomer's pin, space full: the largest holder gives one up, not the least recently used (alice).
  assert.equal(await store.setIfAbsent('upload:carol-1', 'n1', 60_000, 'addr:10.0.0.3'), 'n1');
  assert.equal(store.get('upload:alice-1'), 'n1');
  assert.equal(store.evictions.upload, 93);
  // Client pins carry no owner: least recently used, as before.
  const clients = new MemoryPinStore(new FakeClock(), 2);
  await clients.set('client:a', 'n1', 60_000);
  await clients.set('client:b', 'n1', 60_000);
  clients.get('client:a');
  await clients.set('client:c', 'n1', 60_000);
  assert.deepEqual([clients.get('client:a'), clients.get('client:b')], ['n1', undefined]);
});

it('the largest holder is always known, whatever the writes, moves, expiries and deletes', () => {
  const op = fc.record({ kind: fc.constantFrom('add', 'remove'), key: fc.integer({ min: 0, max: 30 }), owner: fc.integer({ min: 0, max: 5 }) });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const owners = new PinOwners();
      const model = new Map<string, string>();
      for (const o of ops) {
        const key = `upload:k${o.key}`;
        if (o.kind === 'add') {
          owners.add(key, `o${o.owner}`);
          model.set(key, `o${o.owner}`);
        } else {
          owners.remove(key);
          model.delete(key);
        }
      }
      const counts = new Map<string, number>();
      for (const owner of model.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
      const most = Math.max(0, ...counts.values());
      const victim = owners.victim('upload', 'o-writer');
      if (most === 0) return victim === undefined;
      return victim !== undefined && counts.get(model.get(victim)!) === most;
    }),
  );
});

it('a pin is its user\'s from any address; without a user, its address, an IPv6 one by its /64', () => {
  assert.equal(pinOwner({ user: 'robot$ci', clientIp: '10.0.0.1' }), pinOwner({ user: 'robot$ci', clientIp: '10.0.0.2' }));
  assert.notEqual(pinOwner({ user: '10.0.0.1', clientIp: '10.0.0.9' }), pinOwner({ clientIp: '10.0.0.1' }), 'a user named like an address is not that address');
  assert.equal(pinOwner({ clientIp: '2001:db8:0:1::5' }), pinOwner({ clientIp: '2001:db8:0:1:ffff:1:2:3' }));
  assert.equal(pinOwner({ clientIp: '2001:db8::1' }), 'addr:2001:db8:0:0::/64');
  assert.notEqual(pinOwner({ clientIp: '2001:db8:0:1::5' }), pinOwner({ clientIp: '2001:db8:0:2::5' }));
  assert.equal(pinOwner({ clientIp: '::1' }), 'addr:0:0:0:0::/64');
  assert.equal(pinOwner({ clientIp: 'fe80::1%eth0' }), 'addr:fe80:0:0:0::/64');
  assert.equal(pinOwner({ clientIp: '192.0.2.7' }), 'addr:192.0.2.7');
});
