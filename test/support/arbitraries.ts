import fc from 'fast-check';

/**
 * Generators shared by the property tests, written against the API fast-check 3 and 4 share
 * (no stringOf/char/unit options), so a change of major version does not break them.
 */

/** Strings of `pool`'s pieces (characters or longer fragments), joined. */
export function stringFrom(pool: readonly string[], maxLength = 16): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...pool), { maxLength }).map((parts) => parts.join(''));
}

/** Any string of UTF-16 code units up to U+02FF: controls, latin1, and beyond what latin1 holds. */
export function anyText(maxLength = 16): fc.Arbitrary<string> {
  return fc.array(fc.integer({ min: 0, max: 0x2ff }), { maxLength }).map((codes) => String.fromCharCode(...codes));
}

/** A name as `lower` in random letter case, as clients spell header names. */
export function anyCase(lower: string): fc.Arbitrary<string> {
  return fc.array(fc.boolean(), { minLength: lower.length, maxLength: lower.length }).map((up) =>
    [...lower].map((c, i) => (up[i] === true ? c.toUpperCase() : c)).join(''),
  );
}

/** Flat [name, value, ...] header arrays with names drawn from `names` or made up, values from `value`. */
export function headerArray(names: fc.Arbitrary<string>, value: fc.Arbitrary<string>, maxPairs = 12): fc.Arbitrary<string[]> {
  return fc.array(fc.tuple(names, value), { maxLength: maxPairs }).map((pairs) => pairs.flat());
}
