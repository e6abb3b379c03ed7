import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { startDockerd, type Dockerd, type DockerResult } from '../support/dockerd.js';
import { importHostImage, nodeBaseSpec, redisSpec } from '../support/host-image.js';
import { freePort } from '../support/servers.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

/**
 * The Dockerfile and docker-compose.yml, built and run for real on a dockerd of the test's own.
 * No base image can be pulled here: the Dockerfile's NODE_IMAGE argument gets a base made from
 * this machine's Node.js, and compose's REDIS_IMAGE one made from its redis-server. Every
 * container uses the host's network (the engine has no bridge) and loopback addresses only.
 */
describe('the container image and docker-compose.yml', () => {
  const tmp = makeTempDir('container');
  const image = 'harbor-lb:e2e';
  let dockerd: Dockerd | undefined;
  let skip: string | undefined;

  before(async () => {
    const started = await startDockerd(tmp.dir);
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    dockerd = started;
    const t0 = Date.now();
    await importHostImage(dockerd, join(tmp.dir, 'node-base'), 'local/node-base:24', nodeBaseSpec());
    const t1 = Date.now();
    // --network host: the build stage's `npm ci` reaches the npm registry the way npm here does.
    const built = await dockerd.docker(['build', '--network', 'host', '--build-arg', 'NODE_IMAGE=local/node-base:24', '-t', image, REPO]);
    assert.equal(built.code, 0, `docker build failed:\n${built.stdout}\n${built.stderr}`);
    process.stderr.write(`container test: base image ${t1 - t0} ms, harbor-lb image build ${Date.now() - t1} ms\n`);
  });
  after(async () => {
    await dockerd?.stop();
    tmp.remove();
  });

  const docker = (args: string[]) => dockerd!.docker(args, undefined, 120_000);
  const inspect = async (what: string, format: string) => {
    const r = await docker(['inspect', '--format', format, what]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  it('serves as a non-root user with production dependencies only, turns healthy, and stops with 0 on SIGTERM', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const cluster = await startSimCluster(tmp.dir, ['none', 'none']);
    t.after(() => cluster.close());
    const [port, adminPort] = [await freePort(), await freePort()];
    const conf = join(tmp.dir, 'image-conf');
    mkdirSync(join(conf, 'certs'), { recursive: true });
    copyFileSync(cluster.cluster.certFile, join(conf, 'certs', 'root.crt'));
    writeFileSync(
      join(conf, 'harbor-lb.yaml'),
      stringify({
        listen: { address: '127.0.0.1', port },
        nodes: cluster.nodes.map((n, i) => ({ name: `h${i + 1}`, url: n.url })),
        token: { rootCert: 'certs/root.crt', probe: { interval: '1s' } },
        health: { interval: '1s' },
        admin: { address: '127.0.0.1', port: adminPort },
      }),
    );
    const name = 'harbor-lb-e2e';
    // The image's own CMD reads /etc/harbor-lb/harbor-lb.yaml; only the check's address and pace are the test's.
    const run = await docker([
      'run', '-d', '--name', name, '--network', 'host', '-v', `${conf}:/etc/harbor-lb:ro`,
      // What deploy/kubernetes/deployment.yaml asks of the pod: nothing written, no capabilities.
      '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '-e', `HARBOR_LB_HEALTHCHECK_URL=http://127.0.0.1:${adminPort}/-/healthz`, '--health-interval', '1s', image,
    ]);
    assert.equal(run.code, 0, run.stderr);
    t.after(() => docker(['rm', '-f', name]));
    const admin = `http://127.0.0.1:${adminPort}`;
    const lb = `http://127.0.0.1:${port}`;
    await until(async () => (await get(`${admin}/-/ready`)) === 200, 30_000, async () => `never ready; logs:\n${(await docker(['logs', name])).stderr}`);
    assert.equal(await get(`${admin}/-/healthz`), 200);

    // A docker-login-shaped exchange through the container: challenge, token, authorised /v2/.
    const challenge = await fetch(`${lb}/v2/`);
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', new RegExp(`realm="${lb}/service/token"`));
    const tokenRes = await fetch(`${lb}/service/token?service=harbor-registry`, { headers: { authorization: `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}` } });
    assert.equal(tokenRes.status, 200);
    const { token } = (await tokenRes.json()) as { token: string };
    assert.equal((await fetch(`${lb}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status, 200);

    // Not root: the image says so and the running process is.
    assert.equal(await inspect(image, '{{.Config.User}}'), 'node');
    const pid = await inspect(name, '{{.State.Pid}}');
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    assert.equal(uid, '1000', 'harbor-lb runs as the node user (uid 1000)');

    // Production dependencies only: what is installed is exactly the lockfile's non-dev packages.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const expected = Object.entries(lock.packages).filter(([p, v]) => p.startsWith('node_modules/') && !v.dev).map(([p]) => p).sort();
    const listed = await docker([
      'exec', name, 'node', '-e',
      `const fs = require('fs'); const out = [];
       const walk = (d) => { for (const e of fs.readdirSync(d)) { if (e.startsWith('.')) continue; const p = d + '/' + e;
         if (e.startsWith('@')) walk(p); else { out.push(p); if (fs.existsSync(p + '/node_modules')) walk(p + '/node_modules'); } } };
       walk('node_modules'); console.log(JSON.stringify(out.sort()));`,
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    const installed = JSON.parse(listed.stdout) as string[];
    assert.deepEqual(installed, expected);
    for (const dev of ['node_modules/typescript', 'node_modules/fast-check', 'node_modules/@types/node']) assert.ok(!installed.includes(dev), dev);

    // The image's HEALTHCHECK asks /-/healthz with node (no curl in slim images), and docker sees it pass.
    const check = JSON.parse(await inspect(image, '{{json .Config.Healthcheck.Test}}')) as string[];
    assert.equal(check[0], 'CMD');
    assert.equal(check[1], 'node');
    assert.match(await inspect(image, '{{json .Config.Env}}'), /HARBOR_LB_HEALTHCHECK_URL=http:\/\/127\.0\.0\.1:9070\/-\/healthz/);
    await until(async () => (await inspect(name, '{{.State.Health.Status}}')) === 'healthy', 30_000, () => inspect(name, '{{json .State.Health}}'));

    // The routing log is on the container's output: the token request, with the node that served it.
    const logs = await docker(['logs', name]);
    const lines = (logs.stdout + logs.stderr).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.route === 'token' && l.status === 200 && /^h[12]$/.test(String(l.node))), 'a routing line for the token request');

    // SIGTERM reaches harbor-lb as PID 1: it drains (nothing in flight) and exits 0 at once, not at docker's kill.
    const t0 = Date.now();
    const stopped = await docker(['stop', '--time', '30', name]);
    const took = Date.now() - t0;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(await inspect(name, '{{.State.ExitCode}}'), '0');
    assert.ok(took < 10_000, `docker stop took ${took} ms`);
    t.diagnostic(`docker stop: ${took} ms`);
  });

  it('docker-compose.yml validates and brings up two instances that share pins through one Redis', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    if ((await run('sh', ['-c', 'command -v docker-compose'], process.env)).code !== 0) {
      return t.skip('docker-compose is not installed (scripts/system-deps.sh installs Debian\'s as root)');
    }
    const env = { ...dockerd!.env, HARBOR_LB_IMAGE: image, REDIS_IMAGE: 'local/redis:e2e', HARBOR_LB_ADMIN_TOKEN: ADMIN_TOKEN };
    const composeFile = join(REPO, 'docker-compose.yml');
    const project = `hlbe2e${process.pid}`;
    const compose = (args: string[], e: NodeJS.ProcessEnv = env) => run('docker-compose', ['--project-directory', REPO, '-p', project, ...args], e);

    // `config` checks the file as compose reads it; without the admin token it refuses, naming it.
    const valid = await compose(['-f', composeFile, 'config']);
    assert.equal(valid.code, 0, valid.stderr);
    const { HARBOR_LB_ADMIN_TOKEN: _omitted, ...noToken } = env;
    const refused = await compose(['-f', composeFile, 'config', '-q'], noToken);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /HARBOR_LB_ADMIN_TOKEN/);
    // The commented demo variant stays valid when uncommented.
    const text = readFileSync(composeFile, 'utf8');
    const demoAt = text.indexOf('  # demo:');
    assert.ok(demoAt > 0, 'docker-compose.yml has the commented demo service');
    const withDemo = join(tmp.dir, 'compose-with-demo.yml');
    writeFileSync(withDemo, text.slice(0, demoAt) + text.slice(demoAt).replace(/^ {2}# ?/gm, '  '));
    const demo = await compose(['-f', withDemo, 'config', '--services']);
    assert.equal(demo.code, 0, demo.stderr);
    assert.deepEqual(demo.stdout.trim().split('\n').sort(), ['demo', 'harbor-lb-1', 'harbor-lb-2', 'redis']);

    // Brought up: the file as compose reads it (its `config` output) less `ports`, which host
    // networking refuses, plus an override for this machine (host network, loopback ports, the
    // test's configs and nodes in place of config/ and certs/).
    const resolved = parse(valid.stdout) as { services: Record<string, { ports?: unknown }> };
    assert.deepEqual(Object.keys(resolved.services).sort(), ['harbor-lb-1', 'harbor-lb-2', 'redis']);
    for (const service of Object.values(resolved.services)) delete service.ports;
    const base = join(tmp.dir, 'compose-resolved.yml');
    // JSON is YAML too, and quotes what YAML 1.1 (compose v1) would read as booleans ("no").
    writeFileSync(base, JSON.stringify(resolved));
    await importHostImage(dockerd!, join(tmp.dir, 'redis-image'), 'local/redis:e2e', redisSpec());
    const cluster = await startSimCluster(tmp.dir, ['none', 'none']);
    t.after(() => cluster.close());
    const conf = join(tmp.dir, 'compose-conf');
    mkdirSync(join(conf, 'certs'), { recursive: true });
    copyFileSync(cluster.cluster.certFile, join(conf, 'certs', 'root.crt'));
    const redisPort = await freePort();
    const instances: { port: number; admin: number }[] = [];
    const services: Record<string, unknown> = {
      redis: { network_mode: 'host', command: ['redis-server', '--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no'] },
    };
    for (const n of [1, 2]) {
      const inst = { port: await freePort(), admin: await freePort() };
      instances.push(inst);
      mkdirSync(join(conf, `lb${n}`));
      writeFileSync(
        join(conf, `lb${n}`, 'harbor-lb.compose.yaml'),
        stringify({
          listen: { address: '127.0.0.1', port: inst.port },
          nodes: cluster.nodes.map((node, i) => ({ name: `h${i + 1}`, url: node.url })),
          token: { rootCert: '../certs/root.crt' },
          health: { interval: '1s' },
          sticky: { store: 'redis', redis: { url: `redis://127.0.0.1:${redisPort}/0` } },
          admin: { address: '127.0.0.1', port: inst.admin, token: '${HARBOR_LB_ADMIN_TOKEN}' },
        }),
      );
      services[`harbor-lb-${n}`] = {
        network_mode: 'host',
        volumes: [`${conf}/lb${n}:/etc/harbor-lb/config:ro`, `${conf}/certs:/etc/harbor-lb/certs:ro`],
        environment: { HARBOR_LB_HEALTHCHECK_URL: `http://127.0.0.1:${inst.admin}/-/healthz` },
      };
    }
    const override = join(tmp.dir, 'compose-override.yml');
    writeFileSync(override, JSON.stringify({ services }));
    const files = ['-f', base, '-f', override];
    const up = await compose([...files, 'up', '-d', '--no-build']);
    t.after(() => compose([...files, 'down', '--timeout', '10']));
    assert.equal(up.code, 0, up.stderr);
    const logsOf = async (service: string) => {
      const r = await compose([...files, 'logs', '--no-color', service]);
      return r.stdout + r.stderr;
    };

    for (const [i, inst] of instances.entries()) {
      const admin = `http://127.0.0.1:${inst.admin}`;
      await until(async () => (await get(`${admin}/-/ready`)) === 200, 30_000, () => logsOf(`harbor-lb-${i + 1}`));
      await until(
        async () => ((await (await fetch(`${admin}/-/status`)).json()) as { sticky: { store: string; connected: boolean } }).sticky.connected,
        30_000,
        () => logsOf(`harbor-lb-${i + 1}`),
      );
    }
    // A UI login through instance 1 (as a browser does it: the portal mints the CSRF cookie, the
    // login form sends it back) starts a session the node vouched for with its Set-Cookie; the pin
    // goes to Redis, and instance 2, which never saw the session, follows it.
    const one = `http://127.0.0.1:${instances[0]!.port}`;
    const portal = await fetch(`${one}/`, { signal: AbortSignal.timeout(5000) });
    await portal.arrayBuffer();
    const csrfCookie = portal.headers.getSetCookie().map((c) => /^_gorilla_csrf=[^;]+/.exec(c)?.[0]).find((c) => c !== undefined)!;
    const login = await fetch(`${one}/c/login`, {
      method: 'POST',
      headers: { cookie: csrfCookie, 'x-harbor-csrf-token': portal.headers.get('x-harbor-csrf-token')!, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'principal=admin&password=Harbor12345',
      signal: AbortSignal.timeout(5000),
    });
    await login.arrayBuffer();
    assert.equal(login.status, 200);
    const cookie = login.headers.getSetCookie().map((c) => /^sid=[^;]+/.exec(c)?.[0]).find((c) => c !== undefined)!;
    assert.ok(cookie, 'the node started a session');
    let second = '';
    await until(
      async () => {
        await get(`http://127.0.0.1:${instances[1]!.port}/api/v2.0/systeminfo`, { cookie });
        second = await logsOf('harbor-lb-2');
        return /"path":"\/api\/v2\.0\/systeminfo"[^\n]*"reason":"pinned"|"reason":"pinned"[^\n]*"path":"\/api\/v2\.0\/systeminfo"/.test(second);
      },
      15_000,
      async () => `instance 2 never followed the pin:\n${second}\n--- instance 1:\n${await logsOf('harbor-lb-1')}`,
    );
  });
});

async function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Polls `cond` until it holds or `ms` pass (then fails with `explain()`): waits on the containers' own state. */
async function until(cond: () => Promise<boolean>, ms: number, explain: () => Promise<string> | string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`condition not met within ${ms} ms: ${await explain()}`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<DockerResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
