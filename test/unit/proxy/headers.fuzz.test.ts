import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { buildRequestHeaders, type ForwardingInfo } from '../../../src/proxy/headers.js';
import { unforwardable } from '../../../src/proxy/request-check.js';
import { anyCase, anyText, headerArray, stringFrom } from '../../support/arbitraries.js';

/** Property tests of the request header rules over header arrays a hostile client could send. */

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'http2-settings', 'expect'];
/** Names from issue 10 and the families it asks for; the test's own list, not the implementation's. */
const FORWARDING_STYLE = [
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server',
  'x-forwarded-ssl', 'x-forwarded-scheme', 'x-forwarded-uri', 'x-forwarded-anything', 'x-forwarded', 'forwarded', 'x-real-ip',
  'x-original-url', 'x-original-host', 'x-original-anything', 'x-rewrite-url', 'x-host', 'x-client-ip', 'true-client-ip',
  'cf-connecting-ip', 'x-proxyuser-ip', 'x-request-id',
];
const END_TO_END = ['host', 'content-length', 'content-type', 'content-encoding', 'content-range', 'authorization', 'cookie'];
const OTHER = ['accept', 'user-agent', 'docker-distribution-api-version', 'x-custom', 'range'];
const KNOWN = [...HOP_BY_HOP, ...FORWARDING_STYLE, ...END_TO_END, ...OTHER];

const names = fc.oneof(fc.constantFrom(...KNOWN).chain(anyCase), stringFrom(['x', '-', 'a', 'forwarded', 'original', 'X-', ' ', '\t', '(', 'é'], 6));
/** Values, including Connection lists that name other headers. */
const connectionLists = fc.array(fc.constantFrom(...KNOWN, 'close', 'keep-alive', ''), { maxLength: 5 }).map((t) => t.join(', '));
const values = fc.oneof(anyText(12), connectionLists);
const infos: fc.Arbitrary<ForwardingInfo> = fc.record({
  peerIp: fc.constantFrom('192.0.2.10', '2001:db8::1'),
  clientIp: fc.constantFrom('192.0.2.10', '2001:db8::1'),
  proto: fc.constantFrom('http' as const, 'https' as const),
  trusted: fc.constant(false),
  identity: fc.constantFrom('abc-1', 'f00-2').map((requestId) => ({ requestId, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', traceId: '0af7651916cd43dd8448eb211c80319c', tracestate: undefined })),
  identityEncoding: fc.boolean(),
});

function namesOf(flat: readonly string[]): string[] {
  return flat.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

it('no hop-by-hop or forwarding-style header from an untrusted client reaches the node', () => {
  fc.assert(
    fc.property(headerArray(names, values), infos, (raw, info) => {
      const out = buildRequestHeaders(raw, info);
      const sent = namesOf(out);
      for (const h of HOP_BY_HOP) assert.ok(!sent.includes(h), `${h} forwarded`);
      // Whatever the client's Connection headers name is hop-by-hop, unless it is end-to-end or the proxy's own.
      const named = new Set<string>();
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) if (t.trim() !== '') named.add(t.trim().toLowerCase());
      }
      const hosts = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'host');
      /** The proxy's own forwarding headers and the values each may have. */
      const own = new Map<string, string[]>([
        ['x-forwarded-for', [info.peerIp]],
        ['x-forwarded-proto', [info.proto]],
        ['x-real-ip', [info.clientIp]],
        ['x-request-id', [info.identity.requestId]],
        ['x-forwarded-host', hosts],
      ]);
      for (const n of named) if (!END_TO_END.includes(n) && !own.has(n)) assert.ok(!sent.includes(n), `${n} named by Connection yet forwarded`);
      // Forwarding-style names carry only the proxy's values, once each.
      for (let i = 0; i < out.length; i += 2) {
        const n = out[i]!.toLowerCase();
        if (!(FORWARDING_STYLE.includes(n) || n.startsWith('x-forwarded-') || n.startsWith('x-original-'))) continue;
        assert.ok(own.get(n)?.includes(out[i + 1]!), `${n}: ${out[i + 1]} is not the proxy's`);
        assert.equal(sent.filter((s) => s === n).length, 1, `${n} sent more than once`);
      }
    }),
    { numRuns: 400 },
  );
});

it("exactly one Host reaches the node and it is the client's; more than one is refused", () => {
  const withHosts = fc.tuple(
    headerArray(names, values, 8),
    fc.array(fc.tuple(anyCase('host'), stringFrom(['hub', '.', 'example', ':8070', 'a'], 4)), { minLength: 1, maxLength: 3 }),
    // Connection headers naming host and its kin are what took the Host away before.
    fc.array(fc.tuple(anyCase('connection'), connectionLists), { maxLength: 2 }),
    fc.nat(),
  );
  fc.assert(
    fc.property(withHosts, infos, ([rest, hosts, connections, at], info) => {
      // The Host and Connection headers spliced in among the others, at any position.
      const pos = 2 * (at % (rest.length / 2 + 1));
      const raw = [...rest.slice(0, pos), ...hosts.flat(), ...rest.slice(pos), ...connections.flat()];
      const clientHosts = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'host');
      const out = buildRequestHeaders(raw, info);
      const sentHosts = out.filter((_, i) => i % 2 === 1 && out[i - 1]!.toLowerCase() === 'host');
      if (clientHosts.length === 1) {
        assert.deepEqual(sentHosts, clientHosts);
        const xfh = out.findIndex((v, i) => i % 2 === 0 && v === 'x-forwarded-host');
        assert.equal(out[xfh + 1], clientHosts[0], 'X-Forwarded-Host is the client\'s Host');
      } else {
        assert.ok(unforwardable('GET', '/v2/', raw, out) !== undefined, 'several Host headers are refused');
      }
    }),
    { numRuns: 300 },
  );
});
