import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { it } from 'node:test';
import fc from 'fast-check';
import { buildRequestHeaders } from '../../../src/proxy/headers.js';
import { unforwardable } from '../../../src/proxy/request-check.js';
import { anyCase, anyText, headerArray, stringFrom } from '../../support/arbitraries.js';

/**
 * request-check against undici's own validation: undici's Request constructor (the check every
 * dispatch runs, lib/core/request.js; no exports map, so its path is reachable) is the oracle.
 * Whatever undici would refuse must be refused before a node is chosen, or it would be taken as a
 * node that cannot be reached (issue 9).
 */
const UndiciRequest = createRequire(import.meta.url)('undici/lib/core/request.js') as new (origin: string, opts: object, handler: object) => unknown;
const handler = {
  onConnect() {},
  onHeaders() {},
  onData() {},
  onComplete() {},
  onError() {},
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError() {},
};

function undiciRefuses(method: string, path: string, headers: string[]): boolean {
  try {
    new UndiciRequest('http://127.0.0.1:1', { method, path, headers }, handler);
    return false;
  } catch {
    return true;
  }
}

const MANAGED = ['host', 'content-length', 'content-type', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'connection', 'te', 'x-forwarded-for'];
// Host and Content-Length often, so duplicates of them come up.
const names = fc.oneof(
  fc.constantFrom('host', 'content-length').chain(anyCase),
  fc.constantFrom(...MANAGED).chain(anyCase),
  stringFrom(['x', '-', 'A', ' ', ':', '\t', '\u00e9', '"', '', '\u0000'], 5),
);
const values = fc.oneof(fc.constantFrom('0', '10', '007', 'hub:8070'), anyText(10), stringFrom(['1', '0', '-', ' ', 'chunked', 'gzip', ',', 'close', 'x y', '\r', '\n'], 5));
/** Arrays of valid names and values only, so a single broken rule (a duplicate) is all there is to find. */
const wellFormed = headerArray(fc.constantFrom('host', 'content-length', 'accept', 'x-a').chain(anyCase), fc.constantFrom('0', '10', 'hub', 'a b'), 4);
const methods = fc.oneof(fc.constantFrom('GET', 'HEAD', 'PUT', 'PATCH', 'get', 'M-SEARCH'), stringFrom(['G', 'E', 'T', ' ', '(', '\u00ff', '\u0000', ''], 4));
const targets = fc.oneof(fc.constantFrom('/v2/', '*', 'http://x/v2/'), stringFrom(['/', 'v2', '%2F', ' ', '\u0000', '\u00ff', '\u0100', '?', '#', 'a'], 6));

it('request-check never throws and refuses everything undici would refuse to send', () => {
  fc.assert(
    fc.property(methods, targets, fc.oneof(headerArray(names, values, 8), wellFormed), fc.boolean(), (method, target, raw, trusted) => {
      const headers = buildRequestHeaders(raw, { peerIp: '192.0.2.1', clientIp: '192.0.2.1', proto: 'http', trusted, identity: { requestId: 'r-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', traceId: '0af7651916cd43dd8448eb211c80319c', tracestate: undefined } });
      const refusal = unforwardable(method, target, raw, headers);
      if (undiciRefuses(method, target, headers)) assert.ok(refusal !== undefined, 'undici refuses it, request-check let it through');
    }),
    { numRuns: 1500 },
  );
});

it('a request is forwarded with a Transfer-Encoding only when its codings are chunked alone', () => {
  const codings = stringFrom(['chunked', 'Chunked', 'gzip', 'identity', ',', ', ', ' ', ';q=1', 'x'], 5);
  const raw = fc.array(fc.tuple(fc.oneof(anyCase('transfer-encoding'), fc.constantFrom('host', 'te')), codings), { maxLength: 3 }).map((p) => p.flat());
  fc.assert(
    fc.property(raw, (raw) => {
      const refusal = unforwardable('POST', '/v2/', raw, ['host', 'hub']);
      const list = raw
        .filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'transfer-encoding')
        .flatMap((v) => v.split(','))
        .map((c) => c.trim().toLowerCase())
        .filter((c) => c !== '');
      const hasTe = raw.some((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'transfer-encoding');
      if (!hasTe || (list.length === 1 && list[0] === 'chunked')) assert.equal(refusal, undefined);
      else assert.equal(refusal?.status, 501);
    }),
    { numRuns: 300 },
  );
});
