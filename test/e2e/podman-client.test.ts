import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { loadImageArchive } from '../support/image-archive.js';
import { preparePodman, type Podman } from '../support/podman.js';
import { startRealHarborCluster, type RealNodeOptions } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The real podman client (Debian podman 4.3, as root, all its state in the test folder) through
 * harbor-lb in front of three real registries: login with the password on stdin, push, rmi, pull.
 * Plain HTTP on loopback with --tls-verify=false.
 */
describe('podman login / push / pull through harbor-lb', () => {
  const tmp = makeTempDir('podman');
  let pm: Podman | undefined;
  let skip: string | undefined;

  before(async () => {
    const prepared = await preparePodman(tmp.dir);
    if ('skip' in prepared) {
      skip = prepared.skip;
      return;
    }
    pm = prepared;
    // Loading may fail: the cache podman writes outside the folder goes in teardown all the same.
    await loadImageArchive((args) => pm!.podman(args), tmp.dir, 'demo', [512 * 1024, 64 * 1024], 'localhost/demo:v1');
  });
  after(() => {
    pm?.cleanup();
    tmp.remove();
  });

  /** n rounds of login, push, rmi (image gone), pull, logout; returns what failed and the digests pushed and pulled. */
  async function rounds(lb: StartedApp, n: number): Promise<{ failures: string[]; digests: Array<[string, string]> }> {
    const p = pm!;
    const host = new URL(lb.url).host;
    const failures: string[] = [];
    const digests: Array<[string, string]> = [];
    const step = async (what: string, args: string[], stdin?: string) => {
      const r = await p.podman(args, stdin);
      if (r.code !== 0) failures.push(`${what}: ${r.stderr.trim()}`);
      return r;
    };
    for (let i = 0; i < n; i++) {
      const ref = `${host}/library/demo:r${i}`;
      const digestFile = join(tmp.dir, `pushed-r${i}-${host.replace(':', '_')}`);
      await step(`login ${i}`, ['login', '--tls-verify=false', '-u', 'admin', '--password-stdin', host], 'Harbor12345');
      // The credentials went to the test's own auth file, nowhere else.
      const auths = (JSON.parse(readFileSync(p.authFile, 'utf8')) as { auths?: Record<string, unknown> }).auths ?? {};
      if (!(host in auths)) failures.push(`login ${i}: ${host} is not in ${p.authFile}`);
      await step(`tag ${i}`, ['tag', 'localhost/demo:v1', ref]);
      await step(`push ${i}`, ['push', '--tls-verify=false', '--digestfile', digestFile, ref]);
      // Both names gone, the image is deleted: the pull has to fetch every layer.
      await step(`rmi ${i}`, ['rmi', ref, 'localhost/demo:v1']);
      await step(`pull ${i}`, ['pull', '--tls-verify=false', ref]);
      const inspected = await step(`inspect ${i}`, ['image', 'inspect', '--format', '{{.Digest}}', ref]);
      const pushed = failures.length === 0 ? readFileSync(digestFile, 'utf8').trim() : '';
      digests.push([pushed, inspected.stdout.trim()]);
      await step(`tag back ${i}`, ['tag', ref, 'localhost/demo:v1']);
      await step(`rmi after pull ${i}`, ['rmi', ref]);
      await step(`logout ${i}`, ['logout', host]);
    }
    return { failures, digests };
  }

  function assertSameDigests(digests: Array<[string, string]>): void {
    for (const [pushed, pulled] of digests) {
      assert.match(pushed, /^sha256:[0-9a-f]{64}$/);
      assert.equal(pulled, pushed, 'podman pulled the manifest it pushed');
    }
  }

  /** Three real registries (`nodes` their faults) behind a harbor-lb, and three rounds through it that must all succeed. */
  async function threeRounds(t: TestContext, name: string, nodes?: RealNodeOptions[]): Promise<StartedApp> {
    const cluster = await startRealHarborCluster(join(tmp.dir, name), 3, nodes);
    t.after(() => cluster.close());
    const lb = await startApp(cluster.nodes.map((n) => n.url), { proxy: { workers: 2 }, token: { rootCert: cluster.keys.certFile, probe: { interval: '1s' } } });
    t.after(() => lb.close());
    const { failures, digests } = await rounds(lb, 3);
    assert.deepEqual(failures, []);
    assertSameDigests(digests);
    return lb;
  }

  it('three rounds against a healthy cluster all succeed', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const lb = await threeRounds(t, 'healthy');
    const lines = lb.logs.requests();
    const manifestsPut = lines.filter((l) => l.method === 'PUT' && /\/manifests\/r\d$/.test(String(l.path)) && l.status === 201).length;
    const blobsGot = lines.filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(String(l.path)) && l.status === 200).length;
    const tokens = lines.filter((l) => l.route === 'token' && l.status === 200).length;
    t.diagnostic(`${lines.length} requests through harbor-lb; ${manifestsPut} manifest PUTs, ${blobsGot} blob GETs, ${tokens} tokens`);
    assert.equal(manifestsPut, 3, 'each round pushed its tag through harbor-lb');
    // Two layers and the config, each round.
    assert.ok(blobsGot >= 9, 'each round pulled every blob back through harbor-lb');
    assert.ok(tokens >= 3, 'podman took its tokens from harbor-lb');
  });

  it('with one node on a foreign key pair (the seed failure): every round succeeds, the node is flagged', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const lb = await threeRounds(t, 'foreign', [{}, { fault: 'foreign-key' }, {}]);
    const flag = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.raised === true && l.node === 'n2' && l.code !== 'REALM_BYPASSES_PROXY', 30_000, 'a trust flag on n2');
    assert.match(String(flag.code), /TOKEN_SIGNED_WITH_FOREIGN_KEY|REGISTRY_REJECTS_CLUSTER_TOKEN/);
  });
});
