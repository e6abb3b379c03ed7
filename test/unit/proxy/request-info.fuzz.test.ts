import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { readRequestHead, SubjectCache, type RequestHead } from '../../../src/proxy/request-info.js';
import { anyCase, anyText, headerArray, stringFrom } from '../../support/arbitraries.js';

/** Property tests of what the proxy reads from a request head: user names yes, secrets never. */

const b64 = stringFrom(['A', 'z', '0', '+', '/', '-', '_', '=', '.', ' ', '%'], 24);
const authValues = fc.oneof(
  anyText(20),
  b64.map((s) => `Basic ${s}`),
  b64.map((s) => `Bearer ${s}`),
  fc.tuple(b64, b64, b64).map(([a, b, c]) => `bearer ${a}.${b}.${c}`),
  fc.constantFrom('Basic', 'Bearer', 'Bearer ', 'Negotiate x', ' Bearer a.b.c'),
);
const names = fc.oneof(fc.constantFrom('authorization', 'cookie', 'content-length', 'transfer-encoding', 'host').chain(anyCase), anyText(6));
const values = fc.oneof(authValues, anyText(12), fc.constantFrom('0', '-1', '1e3', '9007199254740993', ''));

/** Fields that carry secrets onwards (the bearer token to judge, the session cookie to pin), never logged. */
const SECRET_FIELDS = new Set(['bearer', 'session']);

/** The text values of a head, its secrets aside. */
function textsOf(head: RequestHead): string[] {
  return Object.entries(head)
    .filter(([k, v]) => !SECRET_FIELDS.has(k) && typeof v === 'string')
    .map(([, v]) => v as string);
}

/** The head without its secrets: what may be logged. */
function shown(head: RequestHead): string {
  return JSON.stringify({ ...head, bearer: undefined, session: undefined });
}

it('readRequestHead never throws on any header array, and a user it names is a bounded string', () => {
  fc.assert(
    fc.property(headerArray(names, values, 8), (raw) => {
      const head = readRequestHead(raw, new SubjectCache(16));
      if (head.user !== undefined) assert.ok(head.user.length >= 1 && head.user.length <= 256 && head.userFrom !== undefined);
      if (head.contentLength !== undefined) assert.ok(Number.isSafeInteger(head.contentLength) && head.contentLength >= 0);
    }),
    { numRuns: 800 },
  );
});

it('Basic auth yields the name before the first colon and never the password', () => {
  const names = fc.oneof(anyText(12), fc.string({ maxLength: 300 })).map((u) => u.replaceAll(':', ''));
  fc.assert(
    fc.property(names, anyText(16), anyCase('basic'), (user, password, scheme) => {
      const credentials = Buffer.from(`${user}:${password}`).toString('base64');
      const head = readRequestHead(['Authorization', `${scheme} ${credentials}`], new SubjectCache(16));
      // What a UTF-8 round trip makes of the name (a lone surrogate, for one) is what the log may show.
      const decoded = Buffer.from(user).toString('utf8');
      assert.equal(head.user, decoded.length >= 1 && decoded.length <= 256 ? decoded : undefined);
      // The name is the only text taken from the header: neither the password nor the credentials.
      assert.deepEqual(textsOf(head), head.user === undefined ? [] : [head.user, 'basic']);
    }),
    { numRuns: 500 },
  );
});

it("a bearer token yields its subject and never the token", () => {
  const subjects = fc.oneof(stringFrom(['a', 'b', '@', '.', 'x'], 12), fc.constant(undefined), fc.integer(), anyText(8));
  fc.assert(
    fc.property(subjects, stringFrom(['a', 'Q', '0', '-', '_'], 30), anyCase('bearer'), (sub, sig, scheme) => {
      // "SIGq7" marks the signature (base64url, as a token's must be): no subject generated here holds it.
      const signature = `SIGq7${sig}`;
      const payload = Buffer.from(JSON.stringify(sub === undefined ? {} : { sub })).toString('base64url');
      const token = `eyJhbGciOiJSUzI1NiJ9.${payload}.${signature}`;
      const head = readRequestHead(['Authorization', `${scheme} ${token}`], new SubjectCache(16));
      const expected = typeof sub === 'string' && sub.length >= 1 && sub.length <= 256 ? sub : undefined;
      assert.equal(head.user, expected);
      assert.ok(!shown(head).includes(signature), 'the token is never returned');
    }),
    { numRuns: 500 },
  );
});
