import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ConfigError, loadConfigFile, parseConfigText, validateConfig } from '../../../src/config/load.js';
import { defaultWorkers } from '../../../src/config/schema.js';

/** The reference file of design.md, byte for byte: operators' files look like it. */
const REFERENCE = `listen:
  address: 127.0.0.1
  port: 8070
  # tls: {cert: certs/server.crt, key: certs/server.key}   # optional: https on the same port
publicUrl: http://127.0.0.1:8070        # what clients type; realm and Location point here
nodes:
  - name: n1
    url: http://127.0.0.1:17001
  - name: n2
    url: http://127.0.0.1:17002
token:
  rootCert: certs/root.crt              # the cluster's shared root.crt
  issuer: harbor-token-issuer
  service: harbor-registry
health:
  path: /api/v2.0/health
  interval: 1s
sticky:
  store: memory                         # or: redis, with
  # redis: {url: redis://127.0.0.1:6379/0}
admin:
  address: 127.0.0.1
  port: 9070
log:
  level: info
`;

const minimal = { nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }] };

/** The problems a config yields, or [] when it is valid. */
function problems(raw: unknown, env: Record<string, string> = {}): string[] {
  try {
    validateConfig(raw, { env });
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
}

describe('config loading', () => {
  it('accepts the reference file of design.md as written and applies defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-cfg-'));
    const file = join(dir, 'harbor-lb.yaml');
    writeFileSync(file, REFERENCE);
    const cfg = loadConfigFile(file);
    assert.equal(cfg.listen.port, 8070);
    assert.equal(cfg.nodes.length, 2);
    assert.equal(cfg.nodes[1]!.weight, 1);
    assert.equal(cfg.health.interval, 1000);
    assert.equal(cfg.health.timeout, 2000);
    assert.deepEqual(cfg.health.requiredComponents, ['core', 'registry']);
    assert.equal(cfg.balance.policy, 'least-requests');
    assert.equal(cfg.sticky.store, 'memory');
    assert.equal(cfg.admin.port, 9070);
    assert.equal(cfg.token.leeway, 60_000);
    assert.equal(cfg.proxy.idleTimeout, 900_000);
    // Relative paths are taken from the config file's folder, not the working directory.
    assert.equal(cfg.token.rootCert, join(dir, 'certs/root.crt'));
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.nodes[0]), 'the config is frozen');
  });

  it("takes nodes[].ca relative to the config file's folder, like token.rootCert", () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-cfg-'));
    const file = join(dir, 'harbor-lb.yaml');
    writeFileSync(file, 'nodes:\n  - {name: n1, url: "https://10.0.0.1", ca: certs/ca.pem}\n  - {name: n2, url: "https://10.0.0.2", ca: /etc/pki/ca.pem}\n  - {name: n3, url: "https://10.0.0.3"}\n');
    const cfg = loadConfigFile(file);
    assert.deepEqual(cfg.nodes.map((n) => n.ca), [join(dir, 'certs/ca.pem'), '/etc/pki/ca.pem', undefined]);
  });

  it('derives publicUrl from the listener when it is not given', () => {
    assert.equal(validateConfig({ ...minimal, listen: { port: 8443 } }).publicUrl, 'http://127.0.0.1:8443');
    assert.equal(validateConfig({ ...minimal, publicUrl: 'https://hub.example.com/' }).publicUrl, 'https://hub.example.com');
  });

  const rejections: Array<[string, unknown, string]> = [
    ['no nodes', {}, 'nodes: required'],
    ['an empty node list', { nodes: [] }, 'nodes: expected at least one node'],
    ['a node URL that is not http(s)', { nodes: [minimal.nodes[0], { name: 'n2', url: 'ftp://x' }] }, 'nodes[1].url: expected an http(s) URL'],
    ['a node URL that is not a URL at all', { nodes: [{ name: 'n1', url: 'harbor1' }] }, 'nodes[0].url: expected an http(s) URL'],
    ['a node URL with a path', { nodes: [{ name: 'n1', url: 'http://h/harbor' }] }, 'nodes[0].url: expected an origin without a path'],
    ['a node URL with credentials', { nodes: [{ name: 'n1', url: 'http://u:p@h' }] }, 'nodes[0].url: expected an http(s) URL'],
    ['a bad node name', { nodes: [{ name: 'a b', url: 'http://h' }] }, 'nodes[0].name: expected a name'],
    ['a zero weight', { nodes: [{ name: 'n1', url: 'http://h', weight: 0 }] }, 'nodes[0].weight:'],
    ['a CA on an http node', { nodes: [{ name: 'n1', url: 'http://h', ca: 'ca.pem' }] }, 'nodes[0].ca: only for https:// nodes'],
    ['an empty CA path', { nodes: [{ name: 'n1', url: 'https://h', ca: '' }] }, 'nodes[0].ca: expected the path of a PEM CA bundle'],
    ['duplicate node names', { nodes: [{ name: 'a', url: 'http://h' }, { name: 'a', url: 'http://i' }] }, 'nodes[1].name: duplicate node name "a"'],
    ['an unknown top-level key', { ...minimal, balancer: {} }, 'balancer: unknown key'],
    ['an unknown nested key', { ...minimal, health: { intervall: '1s' } }, 'health.intervall: unknown key'],
    ['a duration without unit', { ...minimal, health: { interval: '5' } }, 'health.interval: expected a duration such as "5s", got "5"'],
    ['a number as duration', { ...minimal, health: { timeout: 5 } }, 'health.timeout: expected a duration'],
    ['a port out of range', { ...minimal, listen: { port: 70000 } }, 'listen.port: expected a port number (0-65535)'],
    ['a bad listen address', { ...minimal, listen: { address: 'example.com' } }, 'listen.address: expected an IP address'],
    ['admin on the traffic port', { ...minimal, listen: { address: '127.0.0.1', port: 8070 }, admin: { address: '127.0.0.1', port: 8070 } }, 'admin.port: must differ from listen.port'],
    ['a short admin token', { ...minimal, admin: { token: 'short' } }, 'admin.token: expected at least 16 characters'],
    ['an unknown balance policy', { ...minimal, balance: { policy: 'random' } }, 'balance.policy:'],
    ['redis store without redis settings', { ...minimal, sticky: { store: 'redis' } }, 'sticky.redis: required when sticky.store is redis'],
    ['a non-redis URL', { ...minimal, sticky: { store: 'redis', redis: { url: 'http://r' } } }, 'sticky.redis.url: expected a redis:// or rediss:// URL'],
    ['a Redis port that is not a number', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:notaport/0' } } }, 'sticky.redis.url: expected a port from 1 to 65535'],
    ['a Redis port of 0', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:0/0' } } }, 'sticky.redis.url: expected a port from 1 to 65535'],
    ['a Redis port over 65535', { ...minimal, sticky: { store: 'redis', redis: { url: 'rediss://127.0.0.1:65536/0' } } }, 'sticky.redis.url: expected a port from 1 to 65535'],
    ['a Redis URL that does not parse', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://red is:6379/0' } } }, 'sticky.redis.url: expected a URL such as redis://'],
    ['a Redis password that breaks the URL', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://:pa/ss@redis:6379/0' } } }, 'sticky.redis.url: expected a port from 1 to 65535 after the host, such as redis://redis:6379/0 (percent-encode'],
    ['a Redis database that is not a number', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/zero' } } }, 'sticky.redis.url: expected a database number'],
    ['a negative Redis database', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/-1' } } }, 'sticky.redis.url: expected a database number'],
    ['a fractional Redis database', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/1.5' } } }, 'sticky.redis.url: expected a database number'],
    ['a Redis path of two segments', { ...minimal, sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/0/1' } } }, 'sticky.redis.url: expected a database number'],
    ['an unknown sticky key kind', { ...minimal, sticky: { keys: ['ip'] } }, 'sticky.keys[0]:'],
    ['a bad log level', { ...minimal, log: { level: 'verbose' } }, 'log.level:'],
    ['a routing-log batch window over 1s', { ...minimal, log: { batchWindow: '2s' } }, 'log.batchWindow: expected at most 1s'],
    ['a cache size without a number', { ...minimal, cache: { dir: '/var/cache/h', maxSize: 'lots' } }, 'cache.maxSize: expected a size such as "10GiB"'],
    ['a cache size in an unknown unit', { ...minimal, cache: { dir: '/var/cache/h', maxSize: '10 GiBs' } }, 'cache.maxSize: expected a size such as "10GiB"'],
    ['an empty cache folder', { ...minimal, cache: { dir: '' } }, 'cache.dir:'],
    ['a bad trusted proxy', { ...minimal, listen: { trustedProxies: ['10.0.0.0/33'] } }, 'listen.trustedProxies[0]: expected an IP address or CIDR range'],
    ['tls without a key', { ...minimal, listen: { tls: { cert: 'a.crt' } } }, 'listen.tls.key: required'],
    ['a cipher string OpenSSL matches nothing in', { ...minimal, listen: { tls: { cert: 'a.crt', key: 'a.key', ciphers: 'NO-SUCH-CIPHER:ALSO-NOT' } } }, 'listen.tls.ciphers: expected an OpenSSL cipher string'],
    ['a cipher string of empty names', { ...minimal, listen: { tls: { cert: 'a.crt', key: 'a.key', ciphers: ':' } } }, 'listen.tls.ciphers: expected an OpenSSL cipher string'],
    ['an empty cipher string', { ...minimal, listen: { tls: { cert: 'a.crt', key: 'a.key', ciphers: '' } } }, 'listen.tls.ciphers: expected an OpenSSL cipher string, not an empty one'],
    ['a health path without slash', { ...minimal, health: { path: 'api/health' } }, 'health.path: expected a path starting with "/"'],
    ['a publicUrl that is not a URL', { ...minimal, publicUrl: 'hub.example.com' }, 'publicUrl: expected an http(s) URL'],
    ['a publicUrl with a path', { ...minimal, publicUrl: 'https://hub.example.com/harbor' }, 'publicUrl: expected an origin without a path'],
    ['a publicUrl with a query', { ...minimal, publicUrl: 'https://hub.example.com/?a=b' }, 'publicUrl: expected an origin without a path'],
    ['a publicUrl with a fragment', { ...minimal, publicUrl: 'https://hub.example.com#top' }, 'publicUrl: expected an origin without a path'],
  ];
  for (const [what, raw, expected] of rejections) {
    it(`rejects ${what}, naming the field`, () => {
      const got = problems(raw);
      assert.ok(got.some((p) => p.startsWith(expected)), `expected a problem starting "${expected}", got ${JSON.stringify(got)}`);
    });
  }

  /** Every duration key, as a path; each one shares the same bounds. */
  const DURATION_KEYS = [
    'listen.idleTimeout',
    'listen.headersTimeout',
    'listen.keepAliveTimeout',
    'listen.shutdownGrace',
    'token.leeway',
    'token.probe.interval',
    'token.probe.timeout',
    'health.interval',
    'health.timeout',
    'health.passive.ejectFor',
    'health.passive.maxEjectFor',
    'health.passive.clusterWindow',
    'sticky.redis.timeout',
    'sticky.ttl.upload',
    'sticky.ttl.session',
    'sticky.ttl.client',
    'proxy.connectTimeout',
    'proxy.headersTimeout',
    'proxy.uploadHeadersTimeout',
    'proxy.idleTimeout',
    'doctor.timeout',
  ];
  /** The minimal config with `value` at the dotted `path`. */
  const withValue = (path: string, value: unknown): Record<string, unknown> => {
    const raw: Record<string, unknown> = { ...minimal, sticky: { redis: {} } };
    const keys = path.split('.');
    let at = raw;
    for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
    at[keys.at(-1)!] = value;
    return raw;
  };

  it('rejects a zero duration for every duration key, naming the field and the bounds', () => {
    for (const key of DURATION_KEYS) {
      for (const zero of ['0s', '0ms', '0.2ms']) {
        assert.deepEqual(problems(withValue(key, zero)), [`${key}: expected a duration from 1ms to 24h, got "${zero}"`]);
      }
    }
  });

  it('rejects a duration over 24h for every duration key (timers past 2^31-1 ms fire at once)', () => {
    for (const key of DURATION_KEYS) {
      for (const long of ['25h', '24h1ms', '600h', '99999999999999999999h']) {
        assert.deepEqual(problems(withValue(key, long)), [`${key}: expected a duration from 1ms to 24h, got "${long}"`]);
      }
      // Other rules may relate two keys (ejectFor <= maxEjectFor): only this key's own bounds are asserted.
      const own = (value: string) => problems(withValue(key, value)).filter((p) => p.startsWith(`${key}: expected a duration`));
      assert.deepEqual(own('24h'), [], `${key}: 24h is the longest accepted`);
      assert.deepEqual(own('1ms'), [], `${key}: 1ms is the shortest accepted`);
    }
  });

  it('rejects health.passive.ejectFor over maxEjectFor (it would be ignored), accepting them equal', () => {
    const passive = (p: Record<string, string>) => problems({ ...minimal, health: { passive: p } });
    const rule = 'health.passive.ejectFor: must not exceed health.passive.maxEjectFor (600000 ms > 300000 ms)';
    assert.ok(passive({ ejectFor: '10m', maxEjectFor: '5m' })[0]?.startsWith(rule), JSON.stringify(passive({ ejectFor: '10m', maxEjectFor: '5m' })));
    assert.ok(passive({ ejectFor: '10m' })[0]?.startsWith(rule), 'the default maxEjectFor (5m) counts too');
    assert.deepEqual(passive({ ejectFor: '5m', maxEjectFor: '5m' }), []);
  });

  it('requires admin.token when the admin listener is not on loopback, naming admin.token', () => {
    for (const address of ['0.0.0.0', '::', '10.0.0.5', '::ffff:10.0.0.5', 'fe80::1']) {
      assert.deepEqual(problems({ ...minimal, admin: { address } }), [
        `admin.token: required when admin.address (${address}) is not a loopback address: set a token of at least 16 characters, e.g. \${HARBOR_LB_ADMIN_TOKEN}`,
      ]);
      assert.deepEqual(problems({ ...minimal, admin: { address, token: 'a-long-enough-admin-token' } }), [], `${address} with a token`);
    }
    for (const address of ['127.0.0.1', '127.3.2.1', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost']) {
      assert.deepEqual(problems({ ...minimal, admin: { address } }), [], `${address} is loopback: no token needed`);
    }
    // The shipped examples still load: the compose one binds 0.0.0.0 with its token from the environment.
    const dir = fileURLToPath(new URL('../../../../config/', import.meta.url));
    assert.equal(loadConfigFile(join(dir, 'harbor-lb.example.yaml'), {}).admin.address, '127.0.0.1');
    const compose = loadConfigFile(join(dir, 'harbor-lb.compose.yaml'), { HARBOR_LB_ADMIN_TOKEN: 'a-long-enough-admin-token' });
    assert.equal(compose.admin.address, '0.0.0.0');
    assert.equal(compose.admin.token, 'a-long-enough-admin-token');
  });

  it('accepts Redis URLs with or without port, database and password, and never puts the URL in a problem', () => {
    for (const url of ['redis://127.0.0.1:6379/0', 'redis://redis', 'redis://redis/', 'redis://redis/15', 'rediss://redis:6380/1', 'redis://[::1]:6379/0', 'redis://:p%2Fss@redis:6379/0', 'redis://user:pass@redis:6379/0', 'redis://:pw@mymaster/0']) {
      assert.deepEqual(problems({ ...minimal, sticky: { store: 'redis', redis: { url } } }), [], url);
    }
    const got = problems({ ...minimal, sticky: { store: 'redis', redis: { url: 'redis://:secret-pass@redis:6379/db0' } } });
    assert.equal(got.length, 1);
    assert.ok(!got[0]!.includes('secret-pass'), got[0]);
  });

  it('takes admin.allowedHosts as host names, lower-cased, and refuses ports, schemes and wildcards naming the entry', () => {
    assert.deepEqual(validateConfig(minimal).admin.allowedHosts, []);
    assert.deepEqual(validateConfig({ ...minimal, admin: { allowedHosts: ['Harbor-LB-Admin.example.com', 'harbor-lb-admin'] } }).admin.allowedHosts, [
      'harbor-lb-admin.example.com',
      'harbor-lb-admin',
    ]);
    for (const name of ['harbor-lb-admin:9070', 'http://harbor-lb-admin', '*.example.com', '', 'a..b', '-a.example.com', 'a b', `${'a'.repeat(64)}.example.com`]) {
      const got = problems({ ...minimal, admin: { allowedHosts: ['ok.example.com', name] } });
      assert.ok(got.some((p) => p.startsWith('admin.allowedHosts[1]: expected a host name')), `${JSON.stringify(name)}: ${JSON.stringify(got)}`);
    }
    assert.ok(problems({ ...minimal, admin: { allowedHosts: 'harbor-lb-admin' } })[0]?.startsWith('admin.allowedHosts:'), 'a list, not one name');
  });

  it('takes secrets from environment variables and names the field when one is missing', () => {
    const withToken = { ...minimal, admin: { token: '${ADMIN_TOKEN}' } };
    assert.equal(validateConfig(withToken, { env: { ADMIN_TOKEN: 'a-long-enough-admin-token' } }).admin.token, 'a-long-enough-admin-token');
    assert.deepEqual(problems(withToken), ['admin.token: environment variable ADMIN_TOKEN is not set']);
    assert.equal(validateConfig({ ...minimal, admin: { token: '${NOPE:-fallback-token-0123456}' } }, { env: {} }).admin.token, 'fallback-token-0123456');
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    assert.throws(() => parseConfigText('nodes: [\n'), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('YAML:'));
    assert.throws(() => parseConfigText('log: {}\nlog: {}\nnodes: []'), (e: unknown) => e instanceof ConfigError && /YAML/.test(e.problems[0]!));
  });

  it('names an unreadable file', () => {
    assert.throws(() => loadConfigFile('/nonexistent/harbor-lb.yaml'), (e: unknown) => e instanceof ConfigError && /cannot read the file/.test(e.message));
  });
});

describe('sizes (cache.maxSize)', () => {
  it('takes bytes, SI and binary units', async () => {
    const { parseByteSize } = await import('../../../src/config/byte-size.js');
    assert.deepEqual(['4096', '500MB', '10GiB', '1.5 TB', '64KiB', '7B'].map(parseByteSize), [4096, 500e6, 10 * 2 ** 30, 1.5e12, 65536, 7]);
    assert.deepEqual(['', 'ten', '10gib', '-1GiB', '1e3'].map(parseByteSize), [undefined, undefined, undefined, undefined, undefined]);
  });
});

describe('proxy.workers by default', () => {
  it('is the usable cores wherever the control plane hands out connections, and 1 only where kernel balancing cannot share a port', () => {
    assert.equal(defaultWorkers('darwin', 'least-connections', 8), 8, 'macOS: the handoff needs no SO_REUSEPORT');
    assert.equal(defaultWorkers('win32', 'least-connections', 4), 4);
    assert.equal(defaultWorkers('linux', 'least-connections', 2), 2);
    assert.equal(defaultWorkers('linux', 'kernel', 16), 16);
    assert.equal(defaultWorkers('freebsd', 'kernel', 4), 4);
    assert.equal(defaultWorkers('darwin', 'kernel', 8), 1, 'macOS cannot share a port between processes');
    const base = { nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }] };
    assert.equal(validateConfig(base).proxy.workers, availableParallelism());
    assert.equal(validateConfig({ ...base, proxy: { workers: 3, connectionBalance: 'kernel' } }).proxy.workers, 3, 'said is said');
  });
});
