import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Affinity, VISITOR_PINS_PER_ADDRESS } from '../../../src/balance/affinity.js';
import { boundedLoadPick, rendezvousOrder } from '../../../src/balance/rendezvous.js';
import { validateConfig } from '../../../src/config/load.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeTraffic } from '../../../src/nodes/node-traffic.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { MemoryStateStore } from '../../../src/state/memory-store.js';
import { StickySelector } from '../../../src/balance/sticky-selector.js';
import { createSelector } from '../../../src/balance/create-selector.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup(keys: Array<'upload' | 'session' | 'client'> = ['upload', 'session', 'client'], n = 3) {
  const clock = new FakeClock();
  const cfg = validateConfig({ nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${i + 1}` })), sticky: { keys } });
  const nodes = new NodeSet(cfg, clock);
  const store = new MemoryStateStore(clock, 1000);
  return { clock, nodes, store, aff: new Affinity(store, nodes, cfg.sticky) };
}
const sid = (value: string) => ({ kind: 'session' as const, value });
const login = (clientIp: string) => ({ clientIp, method: 'POST', path: '/c/login', status: 200, requestSession: undefined });
const visit = (clientIp: string) => ({ clientIp, method: 'GET', path: '/', status: 200, requestSession: undefined });
const fakeNode = (name: string, weight = 1, inflight = 0) => {
  const traffic = new NodeTraffic();
  for (let i = 0; i < inflight; i++) traffic.begin();
  return { name, weight, traffic } as unknown as ClusterNode;
};

describe('affinity keys', () => {
  it('prefers the upload, then the session, then the client', () => {
    const { aff } = setup();
    assert.equal(aff.keyOf('u-1', sid('abc'), '10.0.0.1', 'alice')?.kind, 'upload');
    assert.equal(aff.keyOf(undefined, sid('abc'), '10.0.0.1', 'alice')?.kind, 'session');
    assert.equal(aff.keyOf(undefined, { kind: 'csrf', value: 'xyz' }, '10.0.0.1', undefined)?.kind, 'session');
    assert.equal(aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'basic')?.kind, 'client');
  });

  it('never keeps a session id in clear, and tells clients apart by address and user', () => {
    const { aff } = setup();
    const s = aff.keyOf(undefined, sid('secret-session-id'), '10.0.0.1', undefined)!;
    assert.ok(!s.key.includes('secret-session-id'));
    const a = aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'token')!.key;
    assert.notEqual(a, aff.keyOf(undefined, undefined, '10.0.0.1', 'bob', 'token')!.key);
    assert.notEqual(a, aff.keyOf(undefined, undefined, '10.0.0.2', 'alice', 'token')!.key);
    assert.equal(a, aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'basic')!.key, 'one user, whether by Basic auth or a verified token');
    const anonymous = aff.keyOf(undefined, undefined, '10.0.0.1', undefined)!;
    assert.equal(aff.keyOf(undefined, undefined, '10.0.0.1', 'mallory', 'unverified-token')!.key, anonymous.key, 'a name nobody verified is no identity');
    assert.deepEqual([anonymous.vouched, aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'token')!.vouched], [false, true]);
    assert.equal(aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'basic')!.basicUser, 'alice');
  });

  it('ignores kinds that are not configured', () => {
    const onlyUploads = setup(['upload']).aff;
    assert.equal(onlyUploads.keyOf(undefined, sid('abc'), '10.0.0.1', 'alice'), undefined);
    assert.equal(setup([]).aff.keyOf('u-1', undefined, '10.0.0.1', undefined), undefined);
  });
});

describe('pins', () => {
  it('learns uploads from the POST answer and sessions from Set-Cookie', async () => {
    const { aff, nodes, store } = setup();
    aff.learnUpload(nodes.get('n2')!, ['Location', '/v2/a/blobs/uploads/u-9?_state=x']);
    aff.learnSession(nodes.get('n3')!, ['Set-Cookie', 'sid=s-1; Path=/; HttpOnly'], login('ip'));
    aff.learnSession(nodes.get('n1')!, ['Set-Cookie', 'sid=anon; Path=/'], visit('ip'));
    await Promise.resolve();
    assert.equal((await aff.lookup(aff.keyOf('u-9', undefined, 'ip', undefined)!)).node?.name, 'n2');
    assert.equal((await aff.lookup(aff.keyOf(undefined, sid('s-1'), 'ip', undefined)!)).node?.name, 'n3');
    assert.equal((await aff.lookup(aff.keyOf(undefined, sid('anon'), 'ip', undefined)!)).node?.name, 'n1', "a visitor's session cookie routes too");
    assert.deepEqual([store.sizeOf('session'), store.sizeOf('visitor')], [1, 1], 'only the login made a session pin');
  });

  // Found in review (issue 18): Harbor hands any anonymous visitor a session (and a CSRF) cookie;
  // a flood of visits pinned each in the session space and pushed signed-in sessions out.
  it('pins a signed-in session only from a login the node accepted; visitors\' cookies are capped per address', async () => {
    const { aff, nodes, store } = setup();
    const n1 = nodes.get('n1')!;
    aff.learnSession(n1, ['Set-Cookie', 'sid=kept-at-login; Path=/'], visit('10.0.0.1'));
    aff.learnSession(n1, [], { ...login('10.0.0.1'), requestSession: { kind: 'session', value: 'kept-at-login' } });
    for (let i = 0; i < 1000; i++) aff.learnSession(nodes.get('n2')!, ['Set-Cookie', `sid=flood-${i}`, 'Set-Cookie', `_gorilla_csrf=c-${i}`], visit('10.6.6.6'));
    await Promise.resolve();
    assert.equal(store.sizeOf('session'), 1, 'the login signed the kept session in; the flood made no session pin');
    assert.ok(store.sizeOf('visitor') <= VISITOR_PINS_PER_ADDRESS + 1, `visitor pins: ${store.sizeOf('visitor')}`);
    assert.equal((await aff.lookup(aff.keyOf(undefined, sid('kept-at-login'), 'ip', undefined)!)).node, n1);
  });

  it('replaces a pin whose node cannot serve; lets uploads and sessions finish on a draining node, not new clients', async () => {
    const { aff, nodes } = setup();
    const n2 = nodes.get('n2')!;
    nodes.setCheck(nodes.get('n1')!, 'healthy', 't');
    nodes.setCheck(n2, 'healthy', 't');
    const upload = aff.keyOf('u-1', undefined, 'ip', undefined)!;
    const client = aff.keyOf(undefined, undefined, 'ip', 'u')!;
    aff.pin(upload, n2);
    aff.pin(client, n2);
    await Promise.resolve();
    nodes.setDrained(n2, true);
    assert.equal((await aff.lookup(upload)).node, n2);
    assert.deepEqual(await aff.lookup(client), { stale: true });
    nodes.setDrained(n2, false);
    nodes.setCheck(n2, 'unhealthy', 't');
    assert.deepEqual(await aff.lookup(upload), { stale: true }, 'unhealthy');
    nodes.setCheck(n2, 'healthy', 't');
    nodes.quarantine(n2, 't');
    assert.equal(n2.state, 'quarantined');
    assert.deepEqual(await aff.lookup(upload), { stale: true }, 'quarantined');
  });

  it('renews a pin each time it is read, so an upload longer than its TTL keeps its node', async () => {
    const { aff, nodes, clock } = setup();
    const k = aff.keyOf('u-long', undefined, 'ip', undefined)!;
    aff.pin(k, nodes.get('n2')!);
    await Promise.resolve();
    // sticky.ttl.upload is 1h: an upload that keeps sending for 3h keeps its pin.
    for (let i = 0; i < 6; i++) {
      clock.advance(30 * 60_000);
      assert.equal((await aff.lookup(k)).node?.name, 'n2', `after ${(i + 1) * 30} min`);
    }
    clock.advance(60 * 60_000);
    assert.deepEqual(await aff.lookup(k), { stale: false }, 'an idle pin still expires');
  });

  it('lets the first writer win a claim, and forgets pins after their TTL', async () => {
    const { aff, nodes, clock } = setup();
    const k = aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'token')!;
    aff.claim(k, nodes.get('n1')!);
    aff.claim(k, nodes.get('n3')!);
    await Promise.resolve();
    assert.equal((await aff.lookup(k)).node?.name, 'n1');
    clock.advance(30 * 60_000);
    assert.deepEqual(await aff.lookup(k), { stale: false });
  });
});

// Issue 18: a pin was written for every request's key at its first choice, made-up logins and
// made-up session cookies included; with Redis each wrote a key living 30 minutes.
describe('pins come from evidence (NodeChoice.answered)', () => {
  const choose = async (aff: Affinity, key: ReturnType<Affinity['keyOf']>, nodes: NodeSet) => {
    const choice = await new StickySelector(aff, createSelector('round-robin', Math.random)).begin(key);
    const node = choice.next(nodes.available(), new Set())!;
    return { choice, node };
  };

  it('never writes a pin for a made-up Basic name, an anonymous client or a made-up session cookie, whatever the node answers', async () => {
    const { aff, nodes, store } = setup();
    for (let i = 0; i < 100; i++) {
      for (const key of [
        aff.keyOf(undefined, undefined, '10.0.0.1', `made-up-${i}`, 'basic'),
        aff.keyOf(undefined, undefined, `10.0.1.${i}`, undefined),
        aff.keyOf(undefined, sid(`made-up-${i}`), '10.0.0.1', undefined),
        aff.keyOf(undefined, { kind: 'csrf', value: `made-up-${i}` }, '10.0.0.1', undefined),
      ]) {
        const { choice, node } = await choose(aff, key, nodes);
        choice.answered(node, 401);
        choice.answered(node, 200);
        // Found in review: without token.rootCert a token service's 200 vouched, even for anonymous.
        if (key?.kind === 'client' && key.basicUser === undefined) choice.answered(node, 200, true);
      }
    }
    await Promise.resolve();
    assert.equal(store.size(), 0, 'not one pin');
  });

  it('pins a Basic user once a node issued it a good token, a verified token’s user at its first 2xx, and an upload the node answered', async () => {
    const { aff, nodes, store } = setup();
    const alice = aff.keyOf(undefined, undefined, '10.0.0.1', 'alice', 'basic')!;
    const a = await choose(aff, alice, nodes);
    a.choice.answered(a.node, 200, true);
    const bob = aff.keyOf(undefined, undefined, '10.0.0.1', 'bob', 'token')!;
    const b = await choose(aff, bob, nodes);
    b.choice.answered(b.node, 200);
    const upload = aff.keyOf('u-1', undefined, '10.0.0.1', undefined)!;
    const u = await choose(aff, upload, nodes);
    u.choice.answered(u.node, 404);
    await Promise.resolve();
    assert.equal(store.size(), 2, 'the upload the node did not know is not pinned');
    u.choice.answered(u.node, 202);
    await Promise.resolve();
    assert.deepEqual(
      [(await aff.lookup(alice)).node, (await aff.lookup(bob)).node, (await aff.lookup(upload)).node],
      [a.node, b.node, u.node],
    );
  });

  it('moves a session pin whose node cannot serve to the node that served the session, and only then', async () => {
    const { aff, nodes } = setup();
    const [n1, n2] = [nodes.get('n1')!, nodes.get('n2')!];
    aff.learnSession(n1, ['Set-Cookie', 'sid=real; Path=/'], login('ip'));
    await Promise.resolve();
    const key = aff.keyOf(undefined, sid('real'), 'ip', undefined)!;
    nodes.setCheck(n1, 'unhealthy', 't');
    const { choice, node } = await choose(aff, key, nodes);
    assert.notEqual(node, n1);
    choice.answered(node, 500);
    assert.deepEqual(await aff.lookup(key), { stale: true }, 'a failed answer moves nothing');
    choice.answered(node, 200);
    await Promise.resolve();
    assert.equal((await aff.lookup(key)).node, node);
    assert.ok([n2, nodes.get('n3')].includes(node));
  });
});

describe('rendezvous hashing', () => {
  const nodes = ['a', 'b', 'c', 'd', 'e'].map((n) => fakeNode(n));
  const keys = Array.from({ length: 2000 }, (_, i) => `client:${i}`);

  it('spreads keys evenly and is stable across calls', () => {
    const count = new Map<string, number>();
    for (const k of keys) {
      const first = rendezvousOrder(k, nodes)[0]!.name;
      assert.equal(rendezvousOrder(k, [...nodes].reverse())[0]!.name, first, 'order of the node list does not matter');
      count.set(first, (count.get(first) ?? 0) + 1);
    }
    for (const [n, c] of count) assert.ok(c > 300 && c < 500, `${n}: ${c} of 2000`);
  });

  it('moves only the keys of a removed node', () => {
    const without = nodes.filter((n) => n.name !== 'c');
    for (const k of keys) {
      const before = rendezvousOrder(k, nodes)[0]!.name;
      const after = rendezvousOrder(k, without)[0]!.name;
      if (before !== 'c') assert.equal(after, before, k);
    }
  });

  it('follows weights', () => {
    const heavy = [fakeNode('big', 3), fakeNode('small', 1)];
    const big = keys.filter((k) => rendezvousOrder(k, heavy)[0]!.name === 'big').length;
    assert.ok(big > 1350 && big < 1650, `big got ${big} of 2000 with 3:1 weights`);
  });

  it('passes over a node above (1 + loadFactor) times its share, in hash order', () => {
    const order = [fakeNode('first', 1, 9), fakeNode('second', 1, 2), fakeNode('third', 1, 1)];
    // 12 in flight + this one = 13; each node's cap is ceil(1.25 * 13 / 3) = 6.
    assert.equal(boundedLoadPick(order, 0.25)!.name, 'second');
    assert.equal(boundedLoadPick([fakeNode('first', 1, 2), fakeNode('second', 1, 2)], 0.25)!.name, 'first');
  });
});
