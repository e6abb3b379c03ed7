import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pins, VISITOR_PINS_PER_ADDRESS, type PinFacts } from '../../../src/pins/pins.js';
import { PinKeys, type PinKind } from '../../../src/pins/pin-key.js';
import { boundedLoadPick, rendezvousOrder } from '../../../src/balance/rendezvous.js';
import { validateConfig } from '../../../src/config/load.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeTraffic } from '../../../src/nodes/node-traffic.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { createSelector } from '../../../src/balance/create-selector.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup(keys: PinKind[] = ['upload', 'session', 'client'], n = 3) {
  const clock = new FakeClock();
  const cfg = validateConfig({ nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${i + 1}` })), sticky: { keys } });
  const nodes = new NodeSet(cfg, clock);
  const store = new MemoryPinStore(clock, 1000);
  return { clock, nodes, store, pins: new Pins(store, nodes, cfg.sticky, createSelector('round-robin', Math.random)) };
}
/** A request as the request path hands it to pins. */
const req = (f: Partial<PinFacts> = {}): PinFacts => ({ route: 'v2', method: 'GET', path: '/v2/x/manifests/1', clientIp: '10.0.0.1', ...f });
const upload = (uuid: string, f: Partial<PinFacts> = {}) => req({ route: 'upload', method: 'PATCH', path: `/v2/a/blobs/uploads/${uuid}`, ...f });
const sid = (value: string) => ({ kind: 'session' as const, value });
const login = (clientIp: string) => ({ clientIp, method: 'POST', path: '/c/login', status: 200, requestSession: undefined });
const visit = (clientIp: string) => ({ clientIp, method: 'GET', path: '/', status: 200, requestSession: undefined });
const fakeNode = (name: string, weight = 1, inflight = 0) => {
  const traffic = new NodeTraffic();
  for (let i = 0; i < inflight; i++) traffic.begin();
  return { name, weight, traffic } as unknown as ClusterNode;
};
/** Where a request's pin would place it now (undefined: no usable pin). */
const pinnedTo = async (pins: Pins, f: PinFacts) => {
  const p = await pins.begin(f);
  return p.first === 'pinned' ? p.next([], new Set()) : undefined;
};

describe('pin keys', () => {
  const keys = new PinKeys(new Set<PinKind>(['upload', 'session', 'client']));
  it('prefers the upload, then the session, then the client', () => {
    assert.equal(keys.keyOf(upload('u-1', { session: sid('abc'), user: 'alice', userFrom: 'basic' }))?.kind, 'upload');
    assert.equal(keys.keyOf(req({ session: sid('abc'), user: 'alice', userFrom: 'basic' }))?.kind, 'session');
    assert.equal(keys.keyOf(req({ session: { kind: 'csrf', value: 'xyz' } }))?.kind, 'session');
    assert.equal(keys.keyOf(req({ user: 'alice', userFrom: 'basic' }))?.kind, 'client');
    assert.equal(keys.keyOf(req({ route: 'upload', method: 'POST', path: '/v2/a/blobs/uploads/' }))?.kind, 'client', 'an upload not begun yet is its client');
  });

  it('never keeps a session id in clear, and tells clients apart by address and user', () => {
    const s = keys.keyOf(req({ session: sid('secret-session-id') }))!;
    assert.ok(!s.key.includes('secret-session-id'));
    const as = (clientIp: string, user?: string, userFrom?: PinFacts['userFrom']) => keys.keyOf(req({ clientIp, user, userFrom }))!;
    const a = as('10.0.0.1', 'alice', 'token').key;
    assert.notEqual(a, as('10.0.0.1', 'bob', 'token').key);
    assert.notEqual(a, as('10.0.0.2', 'alice', 'token').key);
    assert.equal(a, as('10.0.0.1', 'alice', 'basic').key, 'one user, whether by Basic auth or a verified token');
    const anonymous = as('10.0.0.1');
    assert.equal(as('10.0.0.1', 'mallory', 'unverified-token').key, anonymous.key, 'a name nobody verified is no identity');
    assert.deepEqual([anonymous.vouched, as('10.0.0.1', 'alice', 'token').vouched], [false, true]);
    assert.equal(as('10.0.0.1', 'alice', 'basic').basicUser, 'alice');
  });

  it('ignores kinds that are not configured', () => {
    assert.equal(new PinKeys(new Set<PinKind>(['upload'])).keyOf(req({ session: sid('abc'), user: 'alice', userFrom: 'basic' })), undefined);
    assert.equal(new PinKeys(new Set<PinKind>()).keyOf(upload('u-1')), undefined);
  });
});

describe('pins', () => {
  it('hands back the pin write of an upload begun or a login, to be awaited before the client sees the answer', async () => {
    const { pins, nodes, store } = setup();
    // A store whose writes complete only when the test says so (a control plane or Redis away).
    const writes: Array<() => void> = [];
    const set = store.set.bind(store);
    store.set = (key, value, ttl) => new Promise<void>((resolve) => writes.push(() => void set(key, value, ttl).then(resolve)));
    const post = await pins.begin(req({ route: 'upload', method: 'POST', path: '/v2/a/blobs/uploads/' }));
    const uploadStored = post.observe(nodes.get('n2')!, 202, ['Location', '/v2/a/blobs/uploads/u-7?_state=x']);
    const ui = await pins.begin(req({ route: 'ui', method: 'POST', path: '/c/login' }));
    const loginStored = ui.observe(nodes.get('n3')!, 200, ['Set-Cookie', 'sid=s-7; Path=/']);
    const visitor = await pins.begin(req({ route: 'ui', method: 'GET', path: '/' }));
    assert.equal(visitor.observe(nodes.get('n1')!, 200, ['Set-Cookie', 'sid=anon-7; Path=/']), undefined, 'an anonymous visit is not waited for');
    assert.equal((await pins.begin(req())).observe(nodes.get('n1')!, 200, []), undefined);
    let settled = 0;
    void uploadStored!.then(() => settled++);
    void loginStored!.then(() => settled++);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, 0, 'not before the store has the pins');
    for (const w of writes) w();
    await Promise.all([uploadStored, loginStored]);
    assert.equal(await pinnedTo(pins, upload('u-7')), nodes.get('n2'));
  });

  it('learns uploads from the POST answer and sessions from Set-Cookie', async () => {
    const { pins, nodes, store } = setup();
    const post = await pins.begin(req({ route: 'upload', method: 'POST', path: '/v2/a/blobs/uploads/' }));
    post.observe(nodes.get('n2')!, 202, ['Location', '/v2/a/blobs/uploads/u-9?_state=x']);
    pins.learnSession(nodes.get('n3')!, ['Set-Cookie', 'sid=s-1; Path=/; HttpOnly'], login('ip'));
    pins.learnSession(nodes.get('n1')!, ['Set-Cookie', 'sid=anon; Path=/'], visit('ip'));
    await Promise.resolve();
    assert.equal((await pinnedTo(pins, upload('u-9')))?.name, 'n2');
    assert.equal((await pinnedTo(pins, req({ session: sid('s-1') })))?.name, 'n3');
    assert.equal((await pinnedTo(pins, req({ session: sid('anon') })))?.name, 'n1', "a visitor's session cookie routes too");
    assert.deepEqual([store.sizeOf('session'), store.sizeOf('visitor')], [1, 1], 'only the login made a session pin');
  });

  // Found in review (issue 18): Harbor hands any anonymous visitor a session (and a CSRF) cookie;
  // a flood of visits pinned each in the session space and pushed signed-in sessions out.
  it("pins a signed-in session only from a login the node accepted; visitors' cookies are capped per address", async () => {
    const { pins, nodes, store } = setup();
    const n1 = nodes.get('n1')!;
    pins.learnSession(n1, ['Set-Cookie', 'sid=kept-at-login; Path=/'], visit('10.0.0.1'));
    pins.learnSession(n1, [], { ...login('10.0.0.1'), requestSession: { kind: 'session', value: 'kept-at-login' } });
    for (let i = 0; i < 1000; i++) pins.learnSession(nodes.get('n2')!, ['Set-Cookie', `sid=flood-${i}`, 'Set-Cookie', `_gorilla_csrf=c-${i}`], visit('10.6.6.6'));
    await Promise.resolve();
    assert.equal(store.sizeOf('session'), 1, 'the login signed the kept session in; the flood made no session pin');
    assert.ok(store.sizeOf('visitor') <= VISITOR_PINS_PER_ADDRESS + 1, `visitor pins: ${store.sizeOf('visitor')}`);
    assert.equal(await pinnedTo(pins, req({ session: sid('kept-at-login') })), n1);
  });

  it('replaces a pin whose node cannot serve; lets uploads and sessions finish on a draining node, not new clients', async () => {
    const { pins, nodes } = setup();
    const n2 = nodes.get('n2')!;
    nodes.setCheck(nodes.get('n1')!, 'healthy', 't');
    nodes.setCheck(n2, 'healthy', 't');
    const client = req({ clientIp: 'ip', user: 'u', userFrom: 'token' });
    pins.pin({ kind: 'upload', key: 'upload:u-1' }, n2);
    (await pins.begin(client)).answered(n2, 200);
    await Promise.resolve();
    nodes.setDrained(n2, true);
    assert.equal(await pinnedTo(pins, upload('u-1')), n2);
    const stale = await pins.begin(client);
    assert.equal(stale.first, 'hashed', 'a new client pin is not followed to a draining node');
    nodes.setDrained(n2, false);
    nodes.setCheck(n2, 'unhealthy', 't');
    assert.equal(await pinnedTo(pins, upload('u-1')), undefined, 'unhealthy');
    nodes.setCheck(n2, 'healthy', 't');
    nodes.quarantine(n2, 't');
    assert.equal(n2.state, 'quarantined');
    assert.equal(await pinnedTo(pins, upload('u-1')), undefined, 'quarantined');
  });

  it('renews a pin each time it is read, so an upload longer than its TTL keeps its node', async () => {
    const { pins, nodes, clock } = setup();
    pins.pin({ kind: 'upload', key: 'upload:u-long' }, nodes.get('n2')!);
    await Promise.resolve();
    // sticky.ttl.upload is 1h: an upload that keeps sending for 3h keeps its pin.
    for (let i = 0; i < 6; i++) {
      clock.advance(30 * 60_000);
      assert.equal((await pinnedTo(pins, upload('u-long')))?.name, 'n2', `after ${(i + 1) * 30} min`);
    }
    clock.advance(60 * 60_000);
    assert.equal((await pins.begin(upload('u-long'))).first, 'hashed', 'an idle pin still expires');
  });

  it('lets the first writer win a claim, and forgets pins after their TTL', async () => {
    const { pins, nodes, clock } = setup();
    const alice = req({ user: 'alice', userFrom: 'token' });
    const k = { kind: 'client' as const, key: new PinKeys(new Set<PinKind>(['client'])).keyOf(alice)!.key };
    pins.claim(k, nodes.get('n1')!);
    pins.claim(k, nodes.get('n3')!);
    await Promise.resolve();
    assert.equal((await pinnedTo(pins, alice))?.name, 'n1');
    clock.advance(30 * 60_000);
    assert.equal((await pins.begin(alice)).first, 'hashed');
  });

  it('token requests avoid a node whose tokens the other registries refuse (clock), while another can serve', async () => {
    const { nodes, store } = setup();
    const cfg = validateConfig({ nodes: nodes.all.map((n) => ({ name: n.name, url: n.url })) });
    const n2 = nodes.get('n2')!;
    const skewed = new Pins(store, nodes, cfg.sticky, createSelector('round-robin', Math.random), (n) => n === n2);
    assert.deepEqual([...(await skewed.begin(req({ route: 'token', path: '/service/token' }))).avoid], [n2]);
    assert.deepEqual([...(await skewed.begin(req())).avoid], [], 'only token requests');
    const allSkewed = new Pins(store, nodes, cfg.sticky, createSelector('round-robin', Math.random), () => true);
    assert.deepEqual([...(await allSkewed.begin(req({ route: 'token', path: '/service/token' }))).avoid], [], 'never all of them');
  });
});

// Issue 18: a pin was written for every request's key at its first choice, made-up logins and
// made-up session cookies included; with Redis each wrote a key living 30 minutes.
describe('pins come from evidence (Placement.answered)', () => {
  const place = async (pins: Pins, f: PinFacts, nodes: NodeSet) => {
    const choice = await pins.begin(f);
    return { choice, node: choice.next(nodes.available(), new Set())! };
  };

  it('never writes a pin for a made-up Basic name, an anonymous client or a made-up session cookie, whatever the node answers', async () => {
    const { pins, nodes, store } = setup();
    for (let i = 0; i < 100; i++) {
      for (const f of [
        req({ user: `made-up-${i}`, userFrom: 'basic' }),
        req({ clientIp: `10.0.1.${i}` }),
        req({ session: sid(`made-up-${i}`) }),
        req({ session: { kind: 'csrf', value: `made-up-${i}` } }),
      ]) {
        const { choice, node } = await place(pins, f, nodes);
        choice.answered(node, 401);
        choice.answered(node, 200);
        // Found in review: without token.rootCert a token service's 200 vouched, even for anonymous.
        if (f.user === undefined) choice.answered(node, 200, true);
      }
    }
    await Promise.resolve();
    assert.equal(store.size(), 0, 'not one pin');
  });

  it('pins a Basic user once a node issued it a good token, a verified token’s user at its first 2xx, and an upload the node answered', async () => {
    const { pins, nodes, store } = setup();
    const alice = req({ user: 'alice', userFrom: 'basic' });
    const a = await place(pins, alice, nodes);
    a.choice.answered(a.node, 200, true);
    const bob = req({ user: 'bob', userFrom: 'token' });
    const b = await place(pins, bob, nodes);
    b.choice.answered(b.node, 200);
    const u = await place(pins, upload('u-1'), nodes);
    u.choice.answered(u.node, 404);
    await Promise.resolve();
    assert.equal(store.size(), 2, 'the upload the node did not know is not pinned');
    u.choice.answered(u.node, 202);
    await Promise.resolve();
    assert.deepEqual([await pinnedTo(pins, alice), await pinnedTo(pins, bob), await pinnedTo(pins, upload('u-1'))], [a.node, b.node, u.node]);
  });

  it('moves a session pin whose node cannot serve to the node that served the session, and only then', async () => {
    const { pins, nodes } = setup();
    const [n1, n2] = [nodes.get('n1')!, nodes.get('n2')!];
    pins.learnSession(n1, ['Set-Cookie', 'sid=real; Path=/'], login('ip'));
    await Promise.resolve();
    const real = req({ session: sid('real') });
    nodes.setCheck(n1, 'unhealthy', 't');
    const { choice, node } = await place(pins, real, nodes);
    assert.notEqual(node, n1);
    choice.answered(node, 500);
    assert.equal(await pinnedTo(pins, real), undefined, 'a failed answer moves nothing');
    choice.answered(node, 200);
    await Promise.resolve();
    assert.equal(await pinnedTo(pins, real), node);
    assert.ok([n2, nodes.get('n3')].includes(node));
  });

  it('keeps an upload and a pinned session on their node (mustStay); a client may move', async () => {
    const { pins, nodes } = setup();
    pins.pin({ kind: 'upload', key: 'upload:u-5' }, nodes.get('n1')!);
    pins.learnSession(nodes.get('n2')!, ['Set-Cookie', 'sid=s-5'], login('ip'));
    await Promise.resolve();
    assert.equal((await pins.begin(upload('u-5'))).mustStay, true);
    assert.equal((await pins.begin(req({ session: sid('s-5') }))).mustStay, true);
    assert.equal((await pins.begin(req({ user: 'alice', userFrom: 'token' }))).mustStay, false);
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

  it('gives the same whole order as the formula it is defined by, so instances of any version agree', () => {
    // The definition, written plainly: FNV-1a of `${key}\0${name}`, murmur3's finalizer, score -weight / ln(u), highest first.
    const hash = (s: string): number => {
      let h = 0x811c9dc5;
      for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      return (h ^ (h >>> 16)) >>> 0;
    };
    const reference = (key: string, list: ReturnType<typeof fakeNode>[]) =>
      list
        .map((n) => ({ n: n.name, score: -n.weight / Math.log((hash(`${key}\u0000${n.name}`) + 0.5) / 4294967296) }))
        .sort((a, b) => b.score - a.score)
        .map((s) => s.n);
    const weighted = [fakeNode('a', 1), fakeNode('b', 2), fakeNode('c', 1), fakeNode('d', 5), fakeNode('harbor-é', 1)];
    for (const k of [...keys, '', '10.0.0.1', 'user:robot$ci', 'ü'.repeat(40)]) {
      assert.deepEqual(rendezvousOrder(k, nodes).map((n) => n.name), reference(k, nodes), k);
      assert.deepEqual(rendezvousOrder(k, weighted).map((n) => n.name), reference(k, weighted), k);
    }
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
