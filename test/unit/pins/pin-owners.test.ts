import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { PinOwners, pinOwner } from '../../../src/pins/pin-owners.js';
import { FakeClock } from '../../support/fake-clock.js';

it('a full upload space makes room for a client out of its own pins: a flood pushes out at most one of another client', async () => {
  const clock = new FakeClock();
  const store = new MemoryPinStore(clock, 10);
  await store.set('upload:alice-1', 'n1', 60_000, 'user:alice');
  await store.set('upload:bob-1', 'n2', 60_000, 'user:bob');
  for (let i = 0; i < 8; i++) await store.set(`upload:carol-${i}`, 'n1', 60_000, 'user:carol');
  assert.equal(store.sizeOf('upload'), 10);
  // Mallory holds none: her first pin takes the least recently used (alice's), then only her own.
  for (let i = 0; i < 100; i++) await store.set(`upload:mallory-${i}`, 'n3', 60_000, 'user:mallory');
  assert.equal(store.sizeOf('upload'), 10);
  assert.equal(store.get('upload:alice-1'), undefined, 'the one pin a newcomer may take');
  assert.equal(store.get('upload:bob-1'), 'n2');
  for (let i = 0; i < 8; i++) assert.equal(store.get(`upload:carol-${i}`), 'n1');
  assert.equal(store.get('upload:mallory-98'), undefined, 'her own went, one for one');
  assert.equal(store.get('upload:mallory-99'), 'n3');
  assert.equal(store.evictions.upload, 100);
  // Carol's next pin takes her least recently used: carol-0, read just now, stays; carol-1 goes.
  store.get('upload:carol-0');
  await store.set('upload:carol-new', 'n1', 60_000, 'user:carol');
  assert.deepEqual([store.get('upload:carol-0'), store.get('upload:carol-1'), store.get('upload:carol-new')], ['n1', undefined, 'n1']);
  // An expired pin goes first, whoever's: the writer keeps its own.
  const small = new MemoryPinStore(clock, 3);
  await small.set('upload:x', 'n1', 1_000, 'user:x');
  await small.set('upload:y', 'n1', 60_000, 'user:y');
  await small.set('upload:z', 'n1', 60_000, 'user:z');
  clock.advance(1_001);
  await small.set('upload:z2', 'n2', 60_000, 'user:z');
  assert.deepEqual([small.get('upload:x'), small.get('upload:y'), small.get('upload:z'), small.get('upload:z2')], [undefined, 'n1', 'n1', 'n2']);
  assert.equal(small.evictions.upload, 0, 'an expired pin is no eviction');
  // Client pins carry no owner: least recently used, as before.
  const clients = new MemoryPinStore(new FakeClock(), 2);
  await clients.set('client:a', 'n1', 60_000);
  await clients.set('client:b', 'n1', 60_000);
  clients.get('client:a');
  await clients.set('client:c', 'n1', 60_000);
  assert.deepEqual([clients.get('client:a'), clients.get('client:b')], ['n1', undefined]);
});

it("an owner's least recently used pin is always known, whatever the writes, reads, moves and removals", () => {
  const op = fc.record({ kind: fc.constantFrom('add', 'touch', 'remove'), key: fc.integer({ min: 0, max: 30 }), owner: fc.integer({ min: 0, max: 5 }) });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const owners = new PinOwners();
      // The model: every key with its owner, in order of last use.
      let model: Array<[string, string]> = [];
      for (const o of ops) {
        const key = `upload:k${o.key}`;
        const at = model.findIndex(([k]) => k === key);
        if (o.kind === 'add') {
          owners.add(key, `o${o.owner}`);
          if (at >= 0) model.splice(at, 1);
          model.push([key, `o${o.owner}`]);
        } else if (o.kind === 'touch') {
          owners.touch(key);
          if (at >= 0) model.push(...model.splice(at, 1));
        } else {
          owners.remove(key);
          if (at >= 0) model.splice(at, 1);
        }
      }
      for (let w = 0; w <= 5; w++) {
        const expected = model.find(([, owner]) => owner === `o${w}`)?.[0];
        if (owners.victim('upload', `o${w}`) !== expected) return false;
      }
      model = [];
      return true;
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
  assert.notEqual(pinOwner({ clientIp: '64:ff9b::192.0.2.7' }), pinOwner({ clientIp: '64:ff9b::192.0.2.8' }), 'an IPv4 host behind NAT64 is one host');
});
