import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { parse } from 'yaml';
import { loadConfigFile } from '../../../src/config/load.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

interface Service {
  image?: string;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: string[];
}

/**
 * docker-compose.yml against the config it mounts, without a Docker engine (the e2e container
 * test brings it up where one runs): the two harbor-lb services read config/harbor-lb.compose.yaml
 * where their command says, find its certificate under the certs mount, publish its ports, and
 * share the compose file's Redis.
 */
it('docker-compose.yml: two harbor-lb services on one Redis, mounts and ports matching the config', () => {
  const compose = parse(readFileSync(`${REPO}docker-compose.yml`, 'utf8'), { merge: true }) as { services: Record<string, Service> };
  const lbs = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'serve');
  assert.deepEqual(lbs.map(([name]) => name), ['harbor-lb-1', 'harbor-lb-2']);
  assert.match(compose.services.redis?.image ?? '', /^\$\{REDIS_IMAGE:-redis:7\}$/);
  const config = loadConfigFile(`${REPO}config/harbor-lb.compose.yaml`, { HARBOR_LB_ADMIN_TOKEN: 'an-admin-token-of-16-plus' });
  const published = new Set<string>();
  for (const [name, s] of lbs) {
    const configPath = s.command![s.command!.indexOf('--config') + 1]!;
    const mounts = new Map(s.volumes!.map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    assert.equal(posix.basename(configPath), 'harbor-lb.compose.yaml');
    assert.equal(mounts.get(posix.dirname(configPath)), './config', `${name} mounts the config folder (not the file: a replaced file must reach a reload) where it reads it`);
    // token.rootCert is relative to the config file: inside the container it must be under the certs mount.
    const rootCert = posix.join(posix.dirname(configPath), posix.relative(`${REPO}config`, config.token.rootCert!));
    const certsTarget = [...mounts].find(([, source]) => source === './certs')?.[0];
    assert.equal(posix.dirname(rootCert), certsTarget, `${name}: ${rootCert} is in the certs mount`);
    const targets = s.ports!.map((p) => Number(p.split(':').at(-1)));
    assert.deepEqual(targets, [config.listen.port, config.admin.port], `${name} publishes the traffic and admin ports`);
    assert.match(s.ports![1]!, /^127\.0\.0\.1:/, `${name}: the admin API is published on the host's loopback only`);
    for (const p of s.ports!) {
      assert.ok(!published.has(p.split(':').slice(0, -1).join(':')), `${name}: host port of ${p} is not taken twice`);
      published.add(p.split(':').slice(0, -1).join(':'));
    }
    assert.deepEqual(s.depends_on, ['redis']);
  }
  assert.equal(config.sticky.store, 'redis');
  assert.equal(new URL(config.sticky.redis!.url).hostname, 'redis', 'the Redis URL names the compose service');
  assert.equal(config.admin.address, '0.0.0.0', 'published ports reach 0.0.0.0 inside the container');
});
