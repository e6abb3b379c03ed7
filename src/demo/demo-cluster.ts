import { generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type App } from '../app.js';
import { validateConfig } from '../config/load.js';
import { SimulatedHarborNode } from './harbor-node.js';
import { makeOciImage } from './oci-image.js';

export interface DemoOptions {
  nodes: number;
  port: number;
  adminPort: number;
  /** Make the last node the seed's misconfigured one (foreign key pair). */
  faults: boolean;
  logFormat: 'json' | 'pretty';
  /** Serve clients over HTTPS with a certificate made for 127.0.0.1 and localhost. */
  tls?: boolean;
}

export interface Demo {
  app: App;
  nodes: SimulatedHarborNode[];
  proxyUrl: string;
  adminUrl: string;
  dir: string;
  /** A small OCI image layout to push: `skopeo copy oci:<sampleImage>:v1 docker://…`. */
  sampleImage: string;
  /** With tls: the certificate clients can trust (it is its own CA). */
  certFile?: string;
  close(): Promise<void>;
}

const rsa = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

/**
 * Simulated Harbor nodes sharing one storage folder (the seed's CephFS) and one http.secret,
 * harbor-lb in front. With faults, the last node signs with and trusts a key of its own: the
 * seed's random-401 node. Everything lives in a temporary folder removed by close().
 */
export async function startDemo(o: DemoOptions): Promise<Demo> {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-demo-'));
  // Readable by any local user, so skopeo run as another user can push the sample image; nothing
  // here is secret (the keys never leave memory, root.pem is a public key).
  chmodSync(dir, 0o755);
  const nodes: SimulatedHarborNode[] = [];
  let app: App | undefined;
  const close = async () => {
    await app?.close();
    await Promise.all(nodes.map((n) => n.close()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const cluster = rsa();
    const foreign = rsa();
    const rootCert = join(dir, 'root.pem');
    writeFileSync(rootCert, createPublicKey(cluster).export({ type: 'spki', format: 'pem' }));
    for (let i = 1; i <= o.nodes; i++) {
      const bad = o.faults && i === o.nodes && o.nodes > 1;
      // The second fault: with three nodes or more, harbor2 was installed on its own and got a CSRF key of its own.
      const ownCsrf = o.faults && i === 2 && o.nodes > 2;
      const key = bad ? foreign : cluster;
      nodes.push(
        await new SimulatedHarborNode({
          name: `harbor${i}`,
          signingKey: key,
          registryTrusts: [key],
          storage: join(dir, 'storage'),
          httpSecret: 'harbor-lb-demo-http-secret',
          realm: 'request',
          csrfKey: ownCsrf ? 'harbor2-own-csrf-key-32-chars-xx' : 'harbor-lb-demo-shared-csrf-key-32',
        }).start(),
      );
    }
    const tls = o.tls ? makeDemoCertificate(dir) : undefined;
    const config = validateConfig({
      listen: { address: '127.0.0.1', port: o.port, ...(tls ? { tls: { cert: tls.certFile, key: tls.keyFile } } : {}) },
      nodes: nodes.map((n, i) => ({ name: `harbor${i + 1}`, url: n.url })),
      token: { rootCert, probe: { interval: '10s' } },
      health: { interval: '2s' },
      admin: { address: '127.0.0.1', port: o.adminPort },
      log: { level: 'info', format: o.logFormat },
      // Overlapping pulls share one node read, and pulls of a layer seen before come from disk.
      coalesce: { enabled: true },
      cache: { dir: join(dir, 'cache'), maxSize: '1GiB' },
    });
    app = createApp(config);
    const { proxyUrl, adminUrl } = await app.start();
    const sampleImage = join(dir, 'sample-image');
    makeOciImage(sampleImage, [2 * 1024 * 1024, 512 * 1024], 'v1');
    return { app, nodes, proxyUrl, adminUrl, dir, sampleImage, certFile: tls?.certFile, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** What a newcomer reads first. */
export function demoBanner(d: Demo, faults: boolean): string {
  const host = new URL(d.proxyUrl).host;
  const lines = [
    '',
    `harbor-lb demo: ${d.nodes.length} simulated Harbor nodes behind harbor-lb on ${d.proxyUrl} (admin API ${d.adminUrl})`,
    ...d.nodes.map(
      (n, i) =>
        `  harbor${i + 1}  ${n.url}${faults && i === d.nodes.length - 1 && d.nodes.length > 1 ? '   <- misconfigured on purpose: signs tokens with a key of its own' : ''}${faults && i === 1 && d.nodes.length > 2 ? '   <- misconfigured on purpose: a CSRF key of its own (UI logins)' : ''}`,
    ),
    '',
    'Try it (user admin, password Harbor12345, as on a fresh Harbor):',
    `  skopeo login --tls-verify=false -u admin -p Harbor12345 ${host}`,
    `  skopeo copy --dest-tls-verify=false oci:${d.sampleImage}:v1 docker://${host}/library/demo:v1`,
    `  skopeo copy --src-tls-verify=false docker://${host}/library/demo:v1 dir:/tmp/demo-pulled`,
    ...(d.certFile
      ? [
          `  docker login -u admin ${host}     (HTTPS; docker does not verify 127.0.0.0/8 registries. To have it verify:`,
          `      sudo mkdir -p /etc/docker/certs.d/${host} && sudo cp ${d.certFile} /etc/docker/certs.d/${host}/ca.crt)`,
          `  the certificate: ${d.certFile} (for 127.0.0.1 and localhost; skopeo/podman: --cert-dir with it as ca.crt)`,
        ]
      : [`  docker login -u admin ${host}     (plain HTTP works for 127.0.0.0/8; elsewhere docker needs TLS: run the demo with --tls)`]),
    '',
    'Then look at:',
    `  ${d.adminUrl}/     the status page, in a browser`,
    `  npx harbor-lb status --admin ${d.adminUrl}     node states and flags`,
    `  curl ${d.adminUrl}/metrics`,
    '  the lines below: one per request (node, reason, status) and one per node event',
    '  pull the same image again, or from several shells at once: a "saved the nodes" line counts the blob bytes no node had to read',
    faults ? '  harbor-lb flags the misconfigured nodes (TOKEN_SIGNED_WITH_FOREIGN_KEY, CSRF_KEY_DIFFERS) and keeps clients working.' : '',
    '',
    'Ctrl-C stops everything and removes the temporary data.',
    '',
  ];
  return lines.filter((l, i, a) => !(l === '' && a[i - 1] === '')).join('\n');
}

/**
 * A self-signed server certificate for 127.0.0.1 and localhost (its own CA), made with openssl:
 * Node can sign with keys but cannot build an X.509 certificate by itself.
 */
function makeDemoCertificate(dir: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=harbor-lb-demo', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { stdio: 'pipe' },
    );
  } catch (err) {
    throw new Error(`--tls needs openssl to make the demo's certificate (apt-get install openssl): ${(err as Error).message}`);
  }
  return { certFile, keyFile };
}
