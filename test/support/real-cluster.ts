import { mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { makeTokenKeyPair, type TokenKeyPair } from './pki.js';
import { startRealRegistry, type RealRegistry } from './registry.js';

export interface RealHarborCluster {
  keys: TokenKeyPair;
  nodes: SimulatedHarborNode[];
  registries: RealRegistry[];
  close(): Promise<void>;
}

/**
 * N Harbor nodes on one shared storage folder: each a real docker-registry behind a simulated
 * Harbor core (token service + /v2/ forwarding), all with one key pair and one http.secret.
 * Each registry advertises its own node as realm, as a node configured with its own address does;
 * harbor-lb must rewrite that.
 */
export async function startRealHarborCluster(dir: string, n: number): Promise<RealHarborCluster> {
  const storage = join(dir, 'shared-storage');
  mkdirSync(storage, { recursive: true });
  chmodSync(storage, 0o755);
  const keys = makeTokenKeyPair(dir, 'cluster');
  const nodes: SimulatedHarborNode[] = [];
  const registries: RealRegistry[] = [];
  const close = async () => {
    await Promise.all(nodes.map((x) => x.close()));
    await Promise.all(registries.map((r) => r.stop()));
  };
  try {
    for (let i = 1; i <= n; i++) {
      // The node's port must be known before its registry's realm can name it: start the node
      // first without a registry, then start one with the registry behind it on the same port.
      const probe = await new SimulatedHarborNode({ name: `h${i}`, signingKey: keys.key }).start();
      const port = probe.port;
      await probe.close();
      const registry = await startRealRegistry({
        dir,
        name: `h${i}`,
        storage,
        rootCertBundle: keys.certFile,
        realm: `http://127.0.0.1:${port}/service/token`,
        httpSecret: 'shared-http-secret-for-tests',
      });
      registries.push(registry);
      nodes.push(await new SimulatedHarborNode({ name: `h${i}`, signingKey: keys.key, registryUrl: registry.url, port }).start());
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { keys, nodes, registries, close };
}
