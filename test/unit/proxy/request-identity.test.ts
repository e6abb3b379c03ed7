import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { requestIdentity } from '../../../src/proxy/request-identity.js';

const PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('request identity: X-Request-Id and W3C trace context', () => {
  it("keeps a client's well-formed request id, and one traceparent with its tracestate", () => {
    const id = requestIdentity(['X-Request-Id', ' 7c9e6679-7425-40de-944b-e07fc1f90ae7 ', 'traceparent', PARENT, 'tracestate', 'a=1', 'tracestate', 'b=2'], 'own-1');
    assert.equal(id.requestId, '7c9e6679-7425-40de-944b-e07fc1f90ae7');
    assert.equal(id.traceparent, PARENT);
    assert.equal(id.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(id.tracestate, 'a=1,b=2');
  });

  it('uses its own id for a missing, doubled, over-long or log-unsafe one', () => {
    for (const raw of [
      [],
      ['x-request-id', 'a', 'X-Request-Id', 'b'],
      ['x-request-id', 'a'.repeat(129)],
      ['x-request-id', 'two words'],
      ['x-request-id', 'a"b'],
      ['x-request-id', 'é'],
      ['x-request-id', ''],
    ]) assert.equal(requestIdentity(raw, 'own-1').requestId, 'own-1', JSON.stringify(raw));
  });

  it('starts a new trace for a missing or invalid traceparent, and drops the tracestate that belonged to it', () => {
    for (const bad of [
      undefined,
      'garbage',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      `${PARENT}-extra`,
    ]) {
      const raw = bad === undefined ? ['tracestate', 'a=1'] : ['traceparent', bad, 'tracestate', 'a=1'];
      const id = requestIdentity(raw, 'own-1');
      assert.match(id.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, String(bad));
      assert.equal(id.traceparent.slice(3, 35), id.traceId);
      assert.notEqual(id.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(id.tracestate, undefined);
    }
    assert.notEqual(requestIdentity([], 'a').traceId, requestIdentity([], 'a').traceId, 'each new trace is its own');
  });

  it('does not pass on a tracestate over 512 characters', () => {
    assert.equal(requestIdentity(['traceparent', PARENT, 'tracestate', `a=${'x'.repeat(511)}`], 'x').tracestate, undefined);
    assert.equal(requestIdentity(['traceparent', PARENT, 'tracestate', `a=${'x'.repeat(500)}`], 'x').tracestate?.length, 502);
  });

  it('takes a later version\'s first four fields, and refuses two traceparents', () => {
    const later = '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next';
    assert.equal(requestIdentity(['traceparent', later], 'x').traceparent, later);
    assert.notEqual(requestIdentity(['traceparent', PARENT, 'traceparent', PARENT], 'x').traceparent, PARENT);
  });

  it('gives ids nothing in which JSON escapes, whatever the client sends: the routing line writes them as they are', () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('a"b', 'a\\b', '\u0000', '\ud800', PARENT, `${PARENT.slice(0, 10)}"${PARENT.slice(11)}`));
    const header = fc.tuple(fc.constantFrom('X-Request-Id', 'x-request-id', 'traceparent', 'Traceparent', 'tracestate'), text);
    fc.assert(
      fc.property(fc.array(header, { maxLength: 4 }), (pairs) => {
        const id = requestIdentity(pairs.flat(), 'c0ffee-1z');
        for (const v of [id.requestId, id.traceId]) assert.equal(JSON.stringify(v), `"${v}"`, v);
      }),
      { numRuns: 2000 },
    );
  });
});
