import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { classify, routeOf } from '../../../src/proxy/classify.js';
import { hasDotSegment, normalizePath } from '../../../src/proxy/path-normalize.js';
import { stringFrom } from '../../support/arbitraries.js';

/** Property tests of path normalization and routing over paths built to confuse them. */

/** Segments that matter to routing and normalization, and some that do not. */
const segment = fc.oneof(
  fc.constantFrom('.', '..', '%2e', '%2E', '.%2e', '%2e%2e', '', 'v2', '%76%32', '%76', 'service', 'token', 'api', 'v2.0', 'c', 'blobs', 'uploads'),
  fc.constantFrom('library', 'a%2Fb', '%2F', '%2f', '%', '%z', '%4', '%41', '%252F', '%3A', '~', '%7E', 'chartrepo', '.well-known', 'u-1'),
  stringFrom(['a', '.', '%2', '%4', '%41', '2', 'e', 'E', 'f', 'F', '/', '-', '_', '~', '+', ';', ':', '@'], 5),
);
/** Most paths start inside a route, so every route's rules get exercised, not only the portal's. */
const prefixes = fc.constantFrom('', '/v2', '/v2/library/app', '/v2/a/blobs/uploads', '/service', '/service/token', '/api/v2.0', '/c', '/chartrepo', '/harbor');
const paths = fc.tuple(prefixes, fc.array(segment, { maxLength: 6 })).map(([prefix, segs]) => `${prefix}/${segs.join('/')}`);

/** How a reader that percent-decodes everything first (Harbor's nginx) sees the path before routing. */
function fullyDecoded(path: string): string {
  return normalizePath(path.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))));
}

it('normalize is idempotent and leaves neither dot segments nor empty segments', () => {
  fc.assert(
    fc.property(paths, (raw) => {
      const once = normalizePath(raw);
      assert.equal(normalizePath(once), once);
      assert.ok(!/\/\//.test(once), `"//" in ${once}`);
      assert.ok(!hasDotSegment(once), `dot segment in ${once}`);
    }),
    { numRuns: 1000 },
  );
});

it('an accepted path is routed as its raw and normalized forms and a decoding reader route it, and forwarded as classified', () => {
  fc.assert(
    fc.property(paths, (raw) => {
      const d = routeOf(raw);
      if (d.refused !== undefined) return;
      assert.equal(d.path, normalizePath(raw), 'what is forwarded is the normalized path');
      assert.equal(classify(raw), d.route, 'classification is stable under normalization');
      assert.equal(classify(d.path), d.route, 'the forwarded path routes as the request was routed');
      assert.deepEqual(routeOf(d.path), d, 'a second harbor-lb in front would route it the same');
      assert.equal(classify(fullyDecoded(raw)), d.route, 'a reader that decodes %2F and the rest first sees the same route');
    }),
    { numRuns: 1500 },
  );
});

// The fast path (a path with no "%", "//" or "/.") must decide exactly what the full checks would.
it('a path with nothing to normalize is accepted as it is, in the route of its normalized form', () => {
  const plain = fc
    .tuple(prefixes, fc.array(stringFrom(['a', 'b', '.', '-', '_', '~', '2', 'v', ':', '@', '+'], 6), { maxLength: 6 }))
    .map(([prefix, segs]) => `${prefix}/${segs.join('/')}`)
    .filter((p) => !p.includes('%') && !p.includes('//') && !p.includes('/.'));
  fc.assert(
    fc.property(plain, (raw) => {
      assert.equal(normalizePath(raw), raw);
      assert.ok(!hasDotSegment(raw));
      assert.deepEqual(routeOf(raw), { route: classify(raw), path: raw });
    }),
    { numRuns: 1000 },
  );
});
