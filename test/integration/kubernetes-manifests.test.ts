import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startProcess } from '../support/processes.js';
import { deadPort, freePort } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const DIR = fileURLToPath(new URL('../../../deploy/kubernetes/', import.meta.url));

/** A manifest object, read field by field below. */
type Obj = Record<string, any>;

function load(): { files: string[]; objects: Obj[] } {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
  const objects: Obj[] = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(join(DIR, f), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${f}: YAML errors`);
      const o = doc.toJS() as Obj | null;
      if (o) objects.push({ ...o, __file: f });
    }
  }
  return { files, objects };
}

const find = (objects: Obj[], kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} in deploy/kubernetes`);
  return o;
};
const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
/** A probe's or Service's port: a container port's name or number → its number. */
const portOf = (container: Obj, port: string | number): number => (typeof port === 'number' ? port : container.ports.find((p: Obj) => p.name === port)?.containerPort);

/**
 * deploy/kubernetes against the code: the ConfigMap's config passes the real loader, and every
 * port, path, file and name the other objects use agrees with it. No cluster is needed.
 */
describe('deploy/kubernetes manifests', () => {
  const { files, objects } = load();
  const kustomization = objects.find((o) => o.kind === 'Kustomization')!;
  const deployment = find(objects, 'Deployment', 'harbor-lb');
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c: Obj) => c.name === 'harbor-lb');
  const configMap = find(objects, 'ConfigMap', 'harbor-lb-config');
  // Where the pod sees its config file (a folder mount, so updates reach it), and the file itself.
  const configMount = container.volumeMounts.find((m: Obj) => pod.volumes.find((v: Obj) => v.name === m.name)?.configMap?.name === 'harbor-lb-config');
  const configPath: string = container.args[container.args.indexOf('--config') + 1];
  const env = { HARBOR_LB_ADMIN_TOKEN: 'an-admin-token-of-16-plus', HARBOR_LB_REDIS_PASSWORD: '0123456789abcdef0123456789abcdef' };
  const configText: string = configMap.data[posix.basename(configPath)];
  const config = parseConfigText(configText, { source: 'configmap.yaml', baseDir: configMount.mountPath, env });
  /** The Deployment behind a Service, and the container its target port names. */
  const behind = (service: Obj): { deployment: Obj; container: Obj } => {
    const d = objects.find((o) => o.kind === 'Deployment' && selects(service.spec.selector, o.spec.template.metadata.labels));
    assert.ok(d, `a Deployment behind Service ${service.metadata.name}`);
    return { deployment: d, container: d.spec.template.spec.containers[0] };
  };
  const redisService = find(objects, 'Service', new URL(config.sticky.redis!.url).hostname);
  const envRef = (c: Obj, name: string): Obj => {
    const e = c.env?.find((x: Obj) => x.name === name);
    assert.ok(e?.valueFrom?.secretKeyRef, `${c.name} sets ${name} from a Secret`);
    return e.valueFrom.secretKeyRef;
  };

  it('kustomization lists every manifest, and the Deployment runs the ConfigMap config with 2 replicas as the image user', () => {
    assert.deepEqual([...kustomization.resources].sort(), files.filter((f) => f !== 'kustomization.yaml'));
    assert.equal(deployment.spec.replicas, 2);
    assert.ok(selects(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels));
    assert.deepEqual(container.args, ['serve', '--config', configPath]);
    assert.equal(posix.dirname(configPath), configMount.mountPath, 'the config file is in the ConfigMap mount');
    // subPath mounts never see ConfigMap or Secret updates: a reload would re-read the old files.
    for (const m of container.volumeMounts) assert.equal(m.subPath, undefined, `${m.name} is a folder mount`);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 1000, 'the Dockerfile runs as node, uid 1000');
    // The pod waits for harbor-lb's own drain before it is killed.
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.listen.shutdownGrace);
  });

  it('container ports are the config ports; probes ask the admin port for /-/ready and /-/healthz', () => {
    assert.equal(portOf(container, 'traffic'), config.listen.port);
    assert.equal(portOf(container, 'admin'), config.admin.port);
    assert.equal(container.readinessProbe.httpGet.path, '/-/ready');
    assert.equal(portOf(container, container.readinessProbe.httpGet.port), config.admin.port);
    assert.equal(container.livenessProbe.httpGet.path, '/-/healthz');
    assert.equal(portOf(container, container.livenessProbe.httpGet.port), config.admin.port);
    // The kubelet reaches the pod's address, not its loopback.
    assert.equal(config.admin.address, '0.0.0.0');
    assert.equal(config.listen.address, '0.0.0.0');
  });

  it('the probe paths are answered by the real admin server (ready: 200 or 503, never 404), as the kubelet asks: by pod IP, no token', async (t) => {
    const lb = await startApp([`http://127.0.0.1:${await deadPort()}`], { admin: { token: config.admin.token, allowedHosts: [...config.admin.allowedHosts] } });
    t.after(() => lb.close());
    // httpGet probes without `host` send the pod's IP as Host; a name would need admin.allowedHosts.
    for (const probe of [container.readinessProbe, container.livenessProbe]) assert.equal(probe.httpGet.host, undefined, 'probes go to the pod IP');
    const status = async (path: string) => (await send(`${lb.adminUrl}${path}`, { headers: { host: `10.244.1.7:${config.admin.port}` } })).status;
    assert.equal(await status(container.livenessProbe.httpGet.path), 200);
    assert.ok([200, 503].includes(await status(container.readinessProbe.httpGet.path)));
    assert.equal(await status('/-/no-such-probe'), 404, 'an unknown path would have been noticed');
  });

  it('the certs Secret holds every file the config names, where the pod mounts it', () => {
    const certsMount = container.volumeMounts.find((m: Obj) => pod.volumes.find((v: Obj) => v.name === m.name)?.secret);
    const volume = pod.volumes.find((v: Obj) => v.name === certsMount.name);
    const secret = find(objects, 'Secret', volume.secret.secretName);
    const files = [config.token.rootCert, config.listen.tls?.cert, config.listen.tls?.key].filter((f): f is string => f !== undefined);
    assert.equal(files.length, 3, 'rootCert and TLS are configured');
    for (const file of files) {
      assert.equal(posix.dirname(file), certsMount.mountPath, `${file} is in the Secret's mount`);
      assert.ok(posix.basename(file) in secret.stringData, `Secret ${secret.metadata.name} has ${posix.basename(file)}`);
    }
    // The admin token comes from a Secret key that exists.
    const ref = container.env.find((e: Obj) => e.name === 'HARBOR_LB_ADMIN_TOKEN').valueFrom.secretKeyRef;
    assert.ok(ref.key in find(objects, 'Secret', ref.name).stringData);
    assert.match(configMap.data[posix.basename(configPath)], /\$\{HARBOR_LB_ADMIN_TOKEN\}/);
  });

  it('the Service sends its port to the traffic port, and the PDB keeps one of the 2 replicas', () => {
    const labels = deployment.spec.template.metadata.labels;
    const service = find(objects, 'Service', 'harbor-lb');
    assert.ok(selects(service.spec.selector, labels));
    assert.equal(service.spec.ports.length, 1, 'the admin port is not exposed');
    assert.equal(portOf(container, service.spec.ports[0].targetPort), config.listen.port);
    const pdb = find(objects, 'PodDisruptionBudget', 'harbor-lb');
    assert.ok(selects(pdb.spec.selector.matchLabels, labels));
    assert.equal(pdb.spec.minAvailable, 1);
    assert.ok(pdb.spec.minAvailable < deployment.spec.replicas, 'a drain can still evict one replica');
  });

  it('the replicas share pins through Redis, at the address of the manifests\' Redis Service', () => {
    assert.equal(config.sticky.store, 'redis');
    const url = new URL(config.sticky.redis!.url);
    const service = redisService;
    assert.equal(service.spec.ports[0].port, Number(url.port || 6379));
    const { container: redisContainer } = behind(service);
    assert.ok(!selects(service.spec.selector, deployment.spec.template.metadata.labels), 'the Redis Service does not select harbor-lb pods');
    assert.equal(portOf(redisContainer, service.spec.ports[0].targetPort), 6379);
  });

  it('Redis wants a password from a Secret, and harbor-lb\'s sticky.redis.url takes the same one from its environment', () => {
    const { container: redisContainer, deployment: redis } = behind(redisService);
    const redisRef = envRef(redisContainer, 'REDIS_PASSWORD');
    const lbRef = envRef(container, 'HARBOR_LB_REDIS_PASSWORD');
    assert.deepEqual(lbRef, redisRef, 'one Secret key for both');
    assert.ok(redisRef.key in find(objects, 'Secret', redisRef.name).stringData, `Secret ${redisRef.name} has ${redisRef.key}`);
    const script = redisContainer.args.join(' ');
    assert.match(script, /redis-server .*--requirepass "\$REDIS_PASSWORD"/);
    // The shell bypasses the image's switch from root to its redis user: the pod runs as that user.
    assert.equal(redis.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(redis.spec.template.spec.securityContext.runAsUser, 999);
    // The ConfigMap still validates as a harbor-lb config, with the password in the URL, and
    // refuses to load without it (naming the field) rather than connect without one.
    assert.match(configText, /\$\{HARBOR_LB_REDIS_PASSWORD\}/);
    assert.equal(decodeURIComponent(new URL(config.sticky.redis!.url).password), env.HARBOR_LB_REDIS_PASSWORD);
    assert.throws(
      () => parseConfigText(configText, { baseDir: configMount.mountPath, env: { ...env, HARBOR_LB_REDIS_PASSWORD: '' } }),
      (e: unknown) => e instanceof ConfigError && e.problems.includes('sticky.redis.url: environment variable HARBOR_LB_REDIS_PASSWORD is not set'),
    );
  });

  it('a NetworkPolicy lets only harbor-lb pods reach Redis, on 6379 alone', () => {
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && selects(o.spec.podSelector.matchLabels, behind(redisService).deployment.spec.template.metadata.labels));
    assert.equal(policies.length, 1, 'one NetworkPolicy selects the Redis pods');
    const policy = policies[0]!;
    assert.equal(policy.apiVersion, 'networking.k8s.io/v1');
    assert.ok(policy.spec.policyTypes.includes('Ingress'));
    assert.ok(!selects(policy.spec.podSelector.matchLabels, deployment.spec.template.metadata.labels), 'it does not isolate the harbor-lb pods');
    assert.equal(policy.spec.ingress.length, 1);
    const [rule] = policy.spec.ingress;
    // Pods of this namespace only: no namespaceSelector or ipBlock widens it.
    assert.deepEqual(rule.from.map((f: Obj) => Object.keys(f)), [['podSelector']]);
    assert.ok(selects(rule.from[0].podSelector.matchLabels, deployment.spec.template.metadata.labels), 'harbor-lb pods may connect');
    assert.ok(!selects(rule.from[0].podSelector.matchLabels, behind(redisService).deployment.spec.template.metadata.labels), 'not every pod of the app');
    assert.deepEqual(rule.ports, [{ protocol: 'TCP', port: portOf(behind(redisService).container, redisService.spec.ports[0].targetPort) }]);
  });

  it("Redis started with the manifest's args wants the password; harbor-lb connects with the ConfigMap's URL", async (t) => {
    const { container: redisContainer } = behind(redisService);
    const [shell, flag, script] = redisContainer.args as string[];
    assert.equal(`${shell} ${flag}`, 'sh -c');
    // The script as the pod runs it, with a redis-server on PATH that binds a free loopback port.
    const tmp = makeTempDir('k8s-redis');
    t.after(tmp.remove);
    const real = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
    const port = await freePort();
    writeFileSync(join(tmp.dir, 'redis-server'), `#!/bin/sh\nexec ${real} "$@" --port ${port} --bind 127.0.0.1\n`);
    chmodSync(join(tmp.dir, 'redis-server'), 0o755);
    const podEnv = (password: string) => ({ ...process.env, PATH: `${tmp.dir}:${process.env.PATH ?? ''}`, REDIS_PASSWORD: password });
    // The placeholder (empty) password: Redis does not start without one.
    await assert.rejects(startProcess(shell!, [flag!, script!], /Ready to accept connections/, { env: podEnv('') }), /set password in the harbor-lb-redis Secret/);
    const redis = await startProcess(shell!, [flag!, script!], /Ready to accept connections/, { env: podEnv(env.HARBOR_LB_REDIS_PASSWORD) });
    t.after(() => redis.stop());

    const at = (url: string) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    };
    const nodeUrl = `http://127.0.0.1:${await deadPort()}`;
    const withPassword = await startApp([nodeUrl], { sticky: { store: 'redis', redis: { url: at(config.sticky.redis!.url) } } });
    t.after(() => withPassword.close());
    await withPassword.logs.waitFor((l) => l.event === 'redis_connected');
    const without = new URL(at(config.sticky.redis!.url));
    without.password = '';
    const refused = await startApp([nodeUrl], { sticky: { store: 'redis', redis: { url: without.toString() } } });
    t.after(() => refused.close());
    assert.match(String((await refused.logs.waitFor((l) => l.event === 'redis_down')).reason), /NOAUTH/);
  });
});
