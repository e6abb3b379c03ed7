import assert from 'node:assert/strict';
import { it } from 'node:test';
import { loggablePath, readRequestHead, SubjectCache } from '../../../src/proxy/request-info.js';
import { hashKey } from '../../../src/util/hashed-lru.js';

const jwt = (payload: object) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;

it('takes the user from Basic auth and bearer tokens, never the secret', () => {
  const subjects = new SubjectCache();
  const basic = Buffer.from('alice:s3cret:with:colons').toString('base64');
  assert.deepEqual(readRequestHead(['Authorization', `Basic ${basic}`], subjects), { hasBody: false, contentLength: undefined, user: 'alice', userFrom: 'basic', cookie: undefined });
  assert.equal(readRequestHead(['authorization', `Bearer ${jwt({ sub: 'bob' })}`], subjects).user, 'bob');
  assert.equal(readRequestHead(['authorization', `Bearer ${jwt({})}`], subjects).user, undefined, 'anonymous token');
  for (const bad of ['Bearer', 'Bearer not-a-jwt', 'Bearer a.%%%.c', 'Basic !!!', 'Basic ' + Buffer.from('nocolon').toString('base64'), 'Negotiate x']) {
    assert.equal(readRequestHead(['Authorization', bad], subjects).user, undefined, bad);
  }
});

it("says where the user came from: Basic auth, a verified token, or a token not verified", () => {
  const subjects = new SubjectCache();
  const good = jwt({ sub: 'bob' });
  const forged = jwt({ sub: 'admin' });
  const verified = (token: string) => token === good;
  const from = (auth: string, check?: (t: string) => boolean) => {
    const h = readRequestHead(['Authorization', auth], subjects, check);
    return [h.user, h.userFrom];
  };
  assert.deepEqual(from(`Basic ${Buffer.from('alice:pw').toString('base64')}`, verified), ['alice', 'basic']);
  assert.deepEqual(from(`Bearer ${good}`, verified), ['bob', 'token']);
  assert.deepEqual(from(`Bearer ${forged}`, verified), ['admin', 'unverified-token'], 'a name anyone can write is never shown as fact');
  assert.deepEqual(from(`Bearer ${good}`), ['bob', 'unverified-token'], 'no verifier (no token.rootCert): nothing is verified');
  assert.deepEqual(from(`Bearer ${jwt({})}`, verified), [undefined, undefined], 'anonymous: neither');
  assert.equal('userFrom' in readRequestHead([], subjects), false);
});

it('reads the user of a ~50 KB bearer token (190 scopes)', () => {
  const access = Array.from({ length: 190 }, (_, i) => ({ type: 'repository', name: `library/project-${i}-${'x'.repeat(120)}`, actions: ['pull', 'push'] }));
  const big = jwt({ sub: 'carol', access });
  assert.ok(big.length > 45_000);
  assert.equal(readRequestHead(['authorization', `Bearer ${big}`], new SubjectCache()).user, 'carol');
});

it('caches subjects in a bounded LRU keyed by token hashes, never the tokens', () => {
  const subjects = new SubjectCache(2);
  const [a, b, c] = ['ann', 'ben', 'cat'].map((sub) => jwt({ sub }));
  assert.equal(subjects.subjectOf(a!), 'ann');
  assert.equal(subjects.subjectOf(b!), 'ben');
  assert.equal(subjects.subjectOf(a!), 'ann'); // a used again: b is now the least recently used
  assert.equal(subjects.subjectOf(c!), 'cat');
  assert.deepEqual(subjects.keys(), [hashKey(c!), hashKey(a!)], 'b evicted, most recent first');
  for (let i = 0; i < 1000; i++) subjects.subjectOf(`garbage.${i}.x`);
  assert.equal(subjects.size, 2, 'a flood of distinct tokens never grows it');
  for (const k of subjects.keys()) assert.match(k, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(subjects.keys().every((k) => ![a, b, c].some((t) => t!.includes(k))));
});

it('keeps the cookies for session affinity, joining repeated headers', () => {
  assert.equal(readRequestHead(['Cookie', 'sid=a', 'cookie', 'lang=en'], new SubjectCache()).cookie, 'sid=a; lang=en');
});

it('knows whether a request has a body', () => {
  const s = new SubjectCache();
  assert.equal(readRequestHead(['Content-Length', '0'], s).hasBody, false);
  assert.equal(readRequestHead(['Content-Length', '12'], s).hasBody, true);
  assert.equal(readRequestHead(['Content-Length', '12'], s).contentLength, 12);
  assert.equal(readRequestHead(['Content-Length', 'x12'], s).contentLength, undefined, 'a malformed length is not trusted');
  assert.equal(readRequestHead(['Transfer-Encoding', 'chunked'], s).hasBody, true);
  assert.equal(readRequestHead([], s).hasBody, false);
});

it('blanks secret query parameters in logged paths and keeps the rest', () => {
  assert.equal(loggablePath('/v2/'), '/v2/');
  assert.equal(
    loggablePath('/service/token?account=admin&scope=repository%3Alibrary%2Fa%3Apull&service=harbor-registry'),
    '/service/token?account=admin&scope=repository%3Alibrary%2Fa%3Apull&service=harbor-registry',
  );
  assert.equal(loggablePath('/c/login?principal=admin&password=Harbor12345'), '/c/login?principal=admin&password=[REDACTED]');
  assert.equal(loggablePath('/x?access_token=eyJ.a.b&token=t&Pass%77ord=p'), '/x?access_token=[REDACTED]&token=[REDACTED]&Pass%77ord=[REDACTED]');
});
