import assert from 'node:assert/strict';
import { it } from 'node:test';
import { HashedLru, hashKey } from '../../../src/util/hashed-lru.js';

const token = (i: number) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: `user-${i}` })).toString('base64url')}.c2lnbmF0dXJl`;

it('stays within its bound however many distinct keys arrive', () => {
  const cache = new HashedLru<string>(100);
  for (let i = 0; i < 10_000; i++) cache.set(token(i), `v${i}`);
  assert.equal(cache.size, 100);
  assert.equal(cache.max, 100);
  assert.equal(cache.get(token(9_999)), 'v9999', 'the newest are kept');
  assert.equal(cache.get(token(0)), undefined, 'the oldest are gone');
});

it('evicts the least recently used entry, not the oldest written', () => {
  const cache = new HashedLru<string>(2);
  cache.set(token(1), 'a');
  cache.set(token(2), 'b');
  assert.equal(cache.get(token(1)), 'a'); // used: now the most recent
  cache.set(token(3), 'c');
  assert.equal(cache.get(token(2)), undefined, 'the least recently used went');
  assert.equal(cache.get(token(1)), 'a');
  assert.equal(cache.get(token(3)), 'c');
  cache.delete(token(3));
  assert.equal(cache.get(token(3)), undefined);
});

it('keeps only SHA-256 hashes of its keys, never the key text', () => {
  const cache = new HashedLru<string>(10);
  const secrets = [token(1), token(2), 'session-id-s3cr3t'];
  for (const s of secrets) cache.set(s, 'x');
  const keys = cache.keys();
  assert.equal(keys.length, 3);
  for (const k of keys) assert.match(k, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(new Set(keys), new Set(secrets.map(hashKey)));
  for (const s of secrets) for (const k of keys) assert.ok(!k.includes(s) && !s.includes(k));
});
