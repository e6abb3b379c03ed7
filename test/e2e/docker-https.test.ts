import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { trustRegistryCa } from '../support/docker-certs.js';
import { startDockerd, type Dockerd } from '../support/dockerd.js';
import { loadImageArchive } from '../support/image-archive.js';
import { createNetnsLink, type NetnsLink } from '../support/netns.js';
import { makeServerCert } from '../support/pki.js';
import { startRealHarborCluster, type RealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The real docker client over HTTPS with certificate verification. dockerd treats registries on
 * 127.0.0.0/8 as insecure (TLS without verification), so it runs in a network namespace of the
 * test's own and reaches harbor-lb on a private address at the other end of a veth pair;
 * harbor-lb (in this process) reaches the registries on loopback. The test CA goes to
 * /etc/docker/certs.d/HOST:PORT/ca.crt for the test's duration.
 */
describe('docker login / push / pull through harbor-lb over verified HTTPS', () => {
  const tmp = makeTempDir('docker-https');
  let link: NetnsLink | undefined;
  let dockerd: Dockerd | undefined;
  let cluster: RealHarborCluster | undefined;
  let skip: string | undefined;

  before(async () => {
    chmodSync(tmp.dir, 0o755);
    if (process.getuid?.() !== 0) {
      skip = 'a network namespace and dockerd need root';
      return;
    }
    try {
      link = createNetnsLink();
    } catch (err) {
      skip = (err as Error).message;
      return;
    }
    const started = await startDockerd(tmp.dir, { prefix: link.exec });
    if ('skip' in started) {
      skip = started.skip;
      return;
    }
    dockerd = started;
    await loadImageArchive((args) => dockerd!.docker(args), tmp.dir, 'demo', [512 * 1024, 64 * 1024], 'library/demo:v1');
    cluster = await startRealHarborCluster(join(tmp.dir, 'cluster'), 3);
  });
  after(async () => {
    await dockerd?.stop();
    await cluster?.close();
    link?.remove();
    tmp.remove();
  });

  /** A harbor-lb serving HTTPS on the link's address with a certificate for it from a CA made in `pkiDir`. */
  async function httpsLb(pkiDir: string): Promise<{ lb: StartedApp; host: string; caFile: string }> {
    const cert = makeServerCert(join(tmp.dir, pkiDir), { ip: link!.hostAddress });
    const lb = await startApp(
      cluster!.nodes.map((n) => n.url),
      { proxy: { workers: 2 }, listen: { address: link!.hostAddress, port: 0, tls: { cert: cert.certFile, key: cert.keyFile } }, token: { rootCert: cluster!.keys.certFile } },
    );
    assert.match(lb.url, /^https:\/\//);
    return { lb, host: new URL(lb.url).host, caFile: cert.caFile };
  }

  it('without the CA login fails; with the test CA in certs.d: login, push, rmi, pull all succeed, over the veth', { timeout: 300_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const d = dockerd!;
    const { lb, host, caFile } = await httpsLb('pki');
    t.after(() => lb.close());
    // Before the CA is in place dockerd cannot verify harbor-lb, and says so.
    const untrusted = await d.docker(['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345');
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /x509: certificate signed by unknown authority/);
    // dockerd reads certs.d at each login, push and pull: no restart needed.
    t.after(trustRegistryCa(host, caFile));
    const ref = `${host}/library/demo:v1`;
    const step = async (args: string[], stdin?: string) => {
      const r = await d.docker(args, stdin);
      assert.equal(r.code, 0, `docker ${args[0]}: ${r.stderr}`);
      return r;
    };
    await step(['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345');
    await step(['tag', 'library/demo:v1', ref]);
    const pushed = await step(['push', ref]);
    const pushedDigest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)?.[1];
    assert.ok(pushedDigest, pushed.stdout);
    await step(['rmi', ref, 'library/demo:v1']);
    const pulled = await step(['pull', ref]);
    assert.match(pulled.stdout, new RegExp(`Digest: ${pushedDigest}`), 'docker pulled the manifest it pushed');
    await step(['tag', ref, 'library/demo:v1']);
    await step(['rmi', ref]);
    await step(['logout', host]);

    const lines = lb.logs.requests();
    t.diagnostic(`${lines.length} requests through harbor-lb over https`);
    assert.ok(lines.some((l) => l.method === 'PUT' && String(l.path).endsWith('/manifests/v1') && l.status === 201), 'the push went through harbor-lb');
    assert.ok(lines.some((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(String(l.path)) && l.status === 200), 'the pull went through harbor-lb');
    // Every request came from the namespace's end of the veth, not from loopback.
    const clients = new Set(lines.map((l) => (l.client as { ip?: string } | undefined)?.ip));
    assert.deepEqual([...clients], [link!.nsAddress]);
  });

  it('with a harbor-lb certificate from another CA: docker login fails with an x509 error and no request gets through', { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const d = dockerd!;
    const trusted = makeServerCert(join(tmp.dir, 'pki-trusted'), { ip: link!.hostAddress });
    const { lb, host } = await httpsLb('pki-other');
    t.after(() => lb.close());
    // dockerd is told to trust the test CA for this address; harbor-lb presents another CA's certificate.
    t.after(trustRegistryCa(host, trusted.caFile));
    const login = await d.docker(['login', '-u', 'admin', '--password-stdin', host], 'Harbor12345');
    t.diagnostic(login.stderr.trim());
    assert.notEqual(login.code, 0);
    assert.match(login.stderr, /x509: certificate signed by unknown authority/);
    assert.equal(lb.logs.requests().length, 0);
  });
});
