import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lowercaseIfNamed } from '../../../src/util/header-names.js';

describe('lowercaseIfNamed', () => {
  const named = lowercaseIfNamed(['content-length', 'host', 'x-request-id']);

  it('gives each of its names in any case as lowercase', () => {
    for (const name of ['Content-Length', 'CONTENT-LENGTH', 'content-length', 'Host', 'X-Request-Id']) assert.equal(named(name), name.toLowerCase());
  });

  it("gives '' for a name of no listed length, and a lowercase other name of a listed length (the caller compares)", () => {
    for (const name of ['Date', 'Server', 'Accept-Ranges', '', 'Docker-Content-Digest']) assert.equal(named(name), name.length === 4 ? name.toLowerCase() : '');
    assert.equal(named('Content-Type'), 'content-type', 'as long as X-Request-Id: lowercased, and no rule names it');
  });
});
