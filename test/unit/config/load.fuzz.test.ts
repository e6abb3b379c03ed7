import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, formatPath, parseConfigText, validateConfig } from '../../../src/config/load.js';

/**
 * Property tests of config validation: whatever a YAML file holds, the program stops with a
 * ConfigError naming the bad field, never with a TypeError from deep inside.
 */

/** What yaml's toJS can hand over, and a few values JSON cannot spell. */
const anyValue = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
  fc.constantFrom(undefined, Number.NaN, -0, Number.MAX_SAFE_INTEGER + 2, '${NOT_SET}', '${NOT_SET:-5s}', '5s', '0s', 'http://127.0.0.1:1', '10.0.0.0/8', '', ' '),
);

function checkOutcome(raw: unknown, allowed: (problem: string) => boolean): void {
  let cfg: unknown;
  try {
    cfg = validateConfig(raw, { env: {}, baseDir: '/etc/harbor-lb' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
    assert.ok(err.problems.length > 0);
    for (const p of err.problems) assert.ok(allowed(p), `problem without the field's path: ${p}`);
    return;
  }
  assert.ok(Object.isFrozen(cfg), 'an accepted config is frozen');
}

it('validateConfig over arbitrary values throws nothing but a ConfigError of "path: message" problems', () => {
  fc.assert(
    fc.property(anyValue, (raw) => {
      // A problem names the top level, a key the value has, or the required nodes list.
      const keys = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? Object.keys(raw) : [];
      checkOutcome(raw, (p) => ['(top level)', 'nodes', ...keys].some((k) => p.startsWith(`${k}: `) || p.startsWith(`${k}.`) || p.startsWith(`${k}[`)));
    }),
    { numRuns: 400 },
  );
});

/** Where the fuzzer writes into an otherwise valid file: every section, nested keys, list items, keys that are not there. */
const PATHS: ReadonlyArray<ReadonlyArray<string | number>> = [
  [], ['listen'], ['listen', 'port'], ['listen', 'address'], ['listen', 'tls'], ['listen', 'tls', 'cert'], ['listen', 'trustedProxies'],
  ['listen', 'trustedProxies', 0], ['listen', 'headersTimeout'], ['publicUrl'], ['nodes'], ['nodes', 0], ['nodes', 0, 'url'],
  ['nodes', 1], ['nodes', 1, 'name'], ['nodes', 0, 'weight'], ['token'], ['token', 'rootCert'], ['token', 'probe', 'interval'],
  ['health', 'path'], ['health', 'passive'], ['health', 'passive', 'maxEjectedFraction'], ['balance', 'retries', 'attempts'],
  ['sticky', 'store'], ['sticky', 'redis'], ['sticky', 'redis', 'url'], ['sticky', 'keys', 0], ['admin', 'port'], ['admin', 'token'],
  ['log', 'level'], ['proxy', 'idleTimeout'], ['doctor', 'credentials'], ['bogus'], ['listen', 'bogus'], ['__proto__'], ['constructor'],
];
/** Problems a check across fields reports at another field than the one written. */
const CROSS_FIELD = ['nodes', 'sticky.redis', 'admin.port', 'listen.port', 'health.passive', 'publicUrl', 'admin.token', 'admin.address'];

/** A valid file, with `value` written at `path` (containers created as needed, as own properties). */
function withValue(path: ReadonlyArray<string | number>, value: unknown): unknown {
  const base: Record<string, unknown> = JSON.parse('{"nodes":[{"name":"n1","url":"http://127.0.0.1:1"},{"name":"n2","url":"http://127.0.0.1:2"}]}');
  if (path.length === 0) return value;
  let at: Record<string | number, unknown> = base;
  for (let i = 0; i < path.length - 1; i++) {
    const next = at[path[i]!];
    const fresh = typeof path[i + 1] === 'number' ? [] : {};
    if (next === null || typeof next !== 'object' || !Object.hasOwn(at, path[i]!)) Object.defineProperty(at, path[i]!, { value: fresh, enumerable: true, writable: true, configurable: true });
    at = at[path[i]!] as Record<string | number, unknown>;
  }
  Object.defineProperty(at, path[path.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
  return base;
}

it('a bad value anywhere in a valid file is reported in the section written to (or at a field a cross-check names)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...PATHS), anyValue, (path, value) => {
      // The field itself, what is below it, or a sibling in a section the write created (listen.tls.key when only cert was written).
      const sections = path.map((_, i) => formatPath(path.slice(0, i + 1)));
      const under = (p: string, f: string) => p.startsWith(`${f}: `) || p.startsWith(`${f}.`) || p.startsWith(`${f}[`);
      checkOutcome(withValue(path, value), (p) => path.length === 0 || sections.some((f) => under(p, f)) || CROSS_FIELD.some((c) => under(p, c)));
    }),
    { numRuns: 500 },
  );
});

/** What the properties above found, kept as named cases. */
function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
    return err.problems;
  }
  return [];
}

it('a node URL that is not a URL at all is a ConfigError at its path, not a TypeError from the origin check', () => {
  assert.deepEqual(problemsOf(() => validateConfig({ nodes: [{ name: 'n1', url: '5s' }] }, { env: {} })), ['nodes[0].url: expected an http(s) URL']);
});

it('a section written under a "__proto__" key is an unknown key, never read as inherited values', () => {
  const yaml = '__proto__:\n  nodes:\n    - {name: n1, url: "http://127.0.0.1:1"}\n';
  assert.deepEqual(problemsOf(() => parseConfigText(yaml, { env: {} })), ['nodes: required', '__proto__: unknown key']);
  const nested = 'nodes:\n  - {name: n1, url: "http://127.0.0.1:1"}\nlisten:\n  __proto__: {port: 1}\n';
  assert.deepEqual(problemsOf(() => parseConfigText(nested, { env: {} })), ['listen.__proto__: unknown key']);
});
