import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { LIVE_SETTINGS } from '../../../src/app/reload.js';
import { planReload as planWith } from '../../../src/config/reload-plan.js';
import type { Config } from '../../../src/config/schema.js';

const base = {
  listen: { address: '127.0.0.1', port: 8070 },
  admin: { address: '127.0.0.1', port: 9070 },
  nodes: [
    { name: 'a', url: 'http://127.0.0.1:1' },
    { name: 'b', url: 'http://127.0.0.1:2' },
  ],
};
/** Planned with the live settings the running app derives from its parts. */
const planReload = (current: Config, next: Config) => planWith(current, next, LIVE_SETTINGS);
const cfg = (over: Record<string, unknown> = {}) => validateConfig({ ...base, ...over });

describe('config reload plan', () => {
  it('names the nodes added, removed and changed', () => {
    const plan = planReload(
      cfg(),
      cfg({
        nodes: [
          { name: 'a', url: 'http://127.0.0.1:1', weight: 3 },
          { name: 'c', url: 'http://127.0.0.1:3' },
        ],
      }),
    );
    assert.deepEqual(plan.nodes, { added: ['c'], removed: ['b'], changed: ['a'] });
    assert.deepEqual(plan.applied, ['nodes']);
    assert.deepEqual(plan.restartNeeded, []);
    assert.deepEqual(
      plan.effective.nodes.map((n) => [n.name, n.weight]),
      [
        ['a', 3],
        ['c', 1],
      ],
    );
  });

  it('applies health, balance, sticky TTLs and the log level live', () => {
    const plan = planReload(cfg(), cfg({ health: { interval: '2s' }, balance: { policy: 'round-robin' }, sticky: { ttl: { upload: '2h' } }, log: { level: 'warn' } }));
    assert.deepEqual(plan.applied.sort(), ['balance.policy', 'health.interval', 'log.level', 'sticky.ttl.upload']);
    assert.deepEqual(plan.restartNeeded, []);
    assert.equal(plan.effective.health.interval, 2000);
    assert.equal(plan.effective.log.level, 'warn');
  });

  it('reports what needs a restart and keeps its old value in force', () => {
    const plan = planReload(
      cfg(),
      cfg({
        listen: { address: '127.0.0.1', port: 8071 },
        admin: { address: '127.0.0.1', port: 9071 },
        sticky: { store: 'redis', redis: { url: 'redis://127.0.0.1:6380/0' } },
        health: { interval: '3s' },
      }),
    );
    // publicUrl defaults from listen.port, so it moves with it.
    assert.deepEqual(plan.restartNeeded.sort(), ['admin.port', 'listen.port', 'publicUrl', 'sticky.redis', 'sticky.store']);
    assert.deepEqual(plan.applied, ['health.interval']);
    assert.equal(plan.effective.listen.port, 8070, 'the port bound at start stays');
    assert.equal(plan.effective.admin.port, 9070);
    assert.equal(plan.effective.sticky.store, 'memory');
    assert.equal(plan.effective.sticky.redis, undefined);
    assert.equal(plan.effective.health.interval, 3000, 'what can change does');
    assert.ok(Object.isFrozen(plan.effective.listen), 'the config in force stays frozen');
  });

  it('a certificate change applies live; turning TLS on or off needs a restart', () => {
    const tls = { cert: '/x/a.crt', key: '/x/a.key' };
    const on = cfg({ listen: { address: '127.0.0.1', port: 8070, tls } });
    assert.deepEqual(planReload(on, cfg({ listen: { address: '127.0.0.1', port: 8070, tls: { ...tls, cert: '/x/b.crt' } } })).applied, ['listen.tls.cert']);
    const off = planReload(on, cfg());
    assert.ok(off.restartNeeded.includes('listen.tls'), off.restartNeeded.join());
    assert.deepEqual(off.effective.listen.tls, on.listen.tls, 'still https until a restart');
    assert.ok(planReload(cfg(), on).restartNeeded.length > 0);
  });

  it('the same file twice changes nothing', () => {
    const plan = planReload(cfg(), cfg());
    assert.deepEqual(plan, { ...plan, nodes: { added: [], removed: [], changed: [] }, applied: [], restartNeeded: [] });
  });

  it('derives the live settings from the parts that apply them, each a setting of the config', () => {
    const defaults = cfg() as unknown as Record<string, unknown>;
    for (const path of LIVE_SETTINGS) {
      let v: unknown = defaults;
      for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
      // token.rootCert and listen.tls are optional; every other live path names a setting with a default.
      if (path !== 'token.rootCert' && path !== 'listen.tls') assert.notEqual(v, undefined, `${path} is no config setting`);
    }
    // What the reload docs promise is live: any setting under these applies without a restart.
    for (const path of ['nodes', 'health.interval', 'health.passive.consecutiveFailures', 'balance.policy', 'balance.retries.attempts', 'balance.panicThreshold', 'sticky.ttl.session', 'sticky.loadFactor', 'log.level', 'listen.tls.cert', 'doctor.repository']) {
      assert.ok(LIVE_SETTINGS.some((p) => path === p || path.startsWith(`${p}.`)), `${path} is live`);
    }
    for (const path of ['listen.port', 'sticky.store', 'sticky.maxEntries', 'token.issuer', 'token.leeway', 'limits.nodeShare', 'proxy.maxConnectionsPerNode']) {
      assert.ok(!LIVE_SETTINGS.some((p) => path === p || path.startsWith(`${p}.`)), `${path} needs a restart`);
    }
  });
});
