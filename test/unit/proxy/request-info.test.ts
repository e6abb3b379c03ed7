import assert from 'node:assert/strict';
import { it } from 'node:test';
import { loggablePath, readRequestHead, SubjectCache } from '../../../src/proxy/request-info.js';
import { hashKey } from '../../../src/util/hashed-lru.js';

const jwt = (payload: object) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;

it('takes the user from Basic auth and bearer tokens, never the secret', () => {
  const subjects = new SubjectCache();
  const basic = Buffer.from('alice:s3cret:with:colons').toString('base64');
  assert.deepEqual(readRequestHead(['Authorization', `Basic ${basic}`], subjects), {
    hasBody: false,
    contentLength: undefined,
    user: 'alice',
    userFrom: 'basic',
    authorizations: 1,
    session: undefined,
  });
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

it('reads the session cookie as Go does, over repeated Cookie headers, and calls two different values ambiguous', () => {
  const session = (...lines: string[]) => readRequestHead(lines.flatMap((l) => ['Cookie', l]), new SubjectCache()).session;
  assert.deepEqual(session('lang=en', 'sid=a'), { kind: 'session', value: 'a' });
  assert.deepEqual(session('_gorilla_csrf=c; beegosessionID=b'), { kind: 'session', value: 'b' }, 'a session before the CSRF cookie');
  assert.deepEqual(session('_gorilla_csrf=c'), { kind: 'csrf', value: 'c' });
  assert.deepEqual(session('sid="quoted"'), { kind: 'session', value: 'quoted' }, 'Go strips the quotes');
  assert.deepEqual(session(' sid=a ;x=y'), { kind: 'session', value: 'a' }, 'spaces around a pair are trimmed');
  assert.deepEqual(session('sid=a', 'sid=a'), { kind: 'session', value: 'a' }, 'the same value twice is no ambiguity');
  assert.equal(session('sid=a; sid=b'), 'ambiguous');
  assert.equal(session('sid=a', 'sid=b'), 'ambiguous');
  for (const nothing of ['sid=', 'sessionid=abc', 'xsid=abc', `sid=${'x'.repeat(600)}`, 'sid=a\\b', 'sid=a"b']) assert.equal(session(nothing), undefined, nothing);
  assert.deepEqual(session('sid=a\\b; sid=c'), { kind: 'session', value: 'c' }, 'a value Go skips is skipped here too');
  // Go since 1.20 reads `sid =a` as sid and a bare `sid` as an empty sid; older readers skip both.
  for (const odd of ['sid =a', 'sid', 'lang=en; _gorilla_csrf ; sid=b', '\tsid\t= "x"']) assert.equal(session(odd), 'ambiguous', odd);
});

// Issue 18: harbor-lb trimmed the bearer token (a trailing 0xA0, say) before verifying it, the
// registry did not, and the registry's invalid_token for a token harbor-lb had verified blamed
// the node. Only the forms every reader agrees on are read now.
it('reads credentials only in the canonical form the registry and Harbor core read them in', () => {
  const subjects = new SubjectCache();
  const token = jwt({ sub: 'bob' });
  const read = (auth: string) => {
    const h = readRequestHead(['Authorization', auth], subjects);
    return [h.bearer, h.user];
  };
  assert.deepEqual(read(`Bearer ${token}`), [token, 'bob']);
  assert.deepEqual(read(`bearer ${token}`), [token, 'bob'], 'distribution lower-cases the scheme');
  for (const odd of [`Bearer  ${token}`, `Bearer ${token}\u00a0`, `Bearer ${token} x`, `Bearer\t${token}`, `Bearer ${token}\u2028`, `Bearer ${token}=`, `Bearer "${token}"`]) {
    assert.deepEqual(read(odd), [undefined, undefined], JSON.stringify(odd.slice(-3)));
  }
  const b64 = Buffer.from('alice:pw').toString('base64');
  assert.deepEqual(read(`Basic ${b64}`), [undefined, 'alice']);
  assert.deepEqual(read(`BASIC ${b64}`), [undefined, 'alice']);
  for (const odd of [`Basic  ${b64}`, `Basic ${b64.replace(/=+$/, '')}`, `Basic ${b64}\u00a0`, `Basic ${b64.slice(0, 4)}\n${b64.slice(4)}`, 'Basic YWxpY2U6cHd=']) {
    assert.deepEqual(read(odd), [undefined, undefined], JSON.stringify(odd));
  }
  assert.deepEqual(read(`Basic ${Buffer.from([0x61, 0xff, 0x3a, 0x70]).toString('base64')}`), [undefined, undefined], 'a name that is not UTF-8 is not read');
  const two = readRequestHead(['Authorization', `Bearer ${token}`, 'authorization', 'Basic eDp5'], subjects);
  assert.deepEqual([two.authorizations, two.bearer], [2, token]);
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
