import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { routingLine } from '../../../src/log/routing-line.js';
import type { RoutingRecord } from '../../../src/proxy/routing-record.js';
import { ROUTES } from '../../../src/registry/route.js';

/** Any text, including what JSON must escape: quotes, backslashes, control characters, lone surrogates, non-ASCII. */
const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u0000\u001f', '\ud800', 'é→😀', '/v2/a"b\\c/manifests/v1'));
/** An id as harbor-lb makes or keeps one (request-identity.ts's well-formed request ids, hex trace ids, reqIds). */
const id = fc.stringMatching(/^[A-Za-z0-9._:+/=@-]{1,128}$/);
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(NaN, Infinity, -0, 1.234));

const record: fc.Arbitrary<RoutingRecord> = fc.record(
  {
    event: fc.constant('request' as const),
    reqId: id,
    requestId: id,
    traceId: id,
    client: fc.record({ ip: text, user: text, userFrom: fc.constantFrom('basic' as const, 'token' as const, 'unverified-token' as const) }, { requiredKeys: ['ip'] }),
    method: text,
    path: text,
    route: fc.constantFrom(...ROUTES),
    node: fc.option(text, { nil: null }),
    reason: fc.option(fc.constantFrom('pinned' as const, 'balanced' as const, 'coalesced' as const, 'cache' as const), { nil: null }),
    affinity: fc.constantFrom('upload' as const, 'session' as const, 'client' as const, 'none' as const),
    status: number,
    durationMs: number,
    attempts: number,
    bytesIn: number,
    bytesOut: number,
    // Any text: the line must be right whatever a code's detail holds.
    error: text as fc.Arbitrary<NonNullable<RoutingRecord['error']>>,
  },
  { requiredKeys: ['event', 'reqId', 'requestId', 'traceId', 'client', 'method', 'path', 'route', 'node', 'reason', 'affinity', 'status', 'durationMs', 'attempts', 'bytesIn', 'bytesOut'] },
);

describe('the routing line', () => {
  it('is the text JSON.stringify gives for the record, after level and time, whatever the record holds', () => {
    fc.assert(
      fc.property(record, (r) => {
        const time = '2026-12-05T03:00:00.123Z';
        assert.equal(routingLine(time, r), `{"level":"info","time":"${time}",${JSON.stringify(r).slice(1)}\n`);
      }),
      { numRuns: 2000 },
    );
  });

  it('writes a duration rounded to the microsecond, as the request path gives it, as JSON.stringify does', () => {
    const line = (durationMs: number) => routingLine('t', { event: 'request', reqId: 'r', requestId: 'q', traceId: 'x', client: { ip: '::1' }, method: 'GET', path: '/v2/', route: 'other', node: null, reason: null, affinity: 'none', status: 200, durationMs, attempts: 1, bytesIn: 0, bytesOut: 0 });
    const micros = fc.oneof(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 2e15 }), fc.constantFrom(1, 5, 10, 50, 100, 120, 500, 1000, 1001, 1e15 - 1, 1e15, 1e15 + 1));
    fc.assert(
      fc.property(micros, (us) => {
        const ms = Math.round((us / 1000) * 1000) / 1000;
        assert.equal(/"durationMs":([^,]*),/.exec(line(ms))?.[1], JSON.stringify(ms));
      }),
      { numRuns: 5000 },
    );
  });
});
