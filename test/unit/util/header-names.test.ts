import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { oneOfNames } from '../../../src/util/header-names.js';

describe('oneOfNames', () => {
  const listed = ['content-length', 'host', 'x-request-id', 'connection', 'keep-alive'];
  const named = oneOfNames(listed);

  it('gives the listed name a header name is, in any case', () => {
    for (const name of ['Content-Length', 'CONTENT-LENGTH', 'content-length', 'cOnTeNt-LeNgTh', 'Host', 'X-Request-Id', 'Keep-Alive']) assert.equal(named(name), name.toLowerCase());
  });

  it("gives '' for any other name, of a listed length or not", () => {
    for (const name of ['Date', 'Server', 'Content-Type', 'Accept-Ranges', '', 'Docker-Content-Digest', 'Hosts', 'content-lengtH ', 'Kee-pAlive']) assert.equal(named(name), '');
  });

  it('reads only ASCII letters as case: the Kelvin sign is no K, a byte 0x20 away from a dash no dash', () => {
    const k = oneOfNames(['keep-alive', 'x-id']);
    assert.equal(k('\u212aeep-alive'), '', 'KELVIN SIGN lowercases to k, but is not K');
    assert.equal(k('x\rid'), '', '"-" (0x2d) and "\\r" (0x0d) differ by 0x20: not the same');
    assert.equal(k('KEEP-ALIVE'), 'keep-alive');
  });

  it('agrees with lowercasing and comparing, for any name', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...listed), fc.string({ maxLength: 16 }), fc.stringMatching(/^[A-Za-z-]{4,14}$/)), fc.boolean(), (base, upper) => {
        const name = upper ? base.toUpperCase() : base;
        const expected = listed.includes(name.toLowerCase()) && /^[\x00-\x7f]*$/.test(name) ? name.toLowerCase() : '';
        assert.equal(named(name), expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a list with a name not in lowercase: it could never match', () => {
    assert.throws(() => oneOfNames(['Content-Length']), /not lowercase/);
  });
});
