import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { makeTokenKeyPair, type TokenKeyPair } from './pki.js';
import { startRealRegistry, type RealRegistry } from './registry.js';
import type { NodeFault } from './sim-cluster.js';
import { startNginx, type NginxTimeouts, type RunningNginx } from './nginx.js';
import { freePort } from './servers.js';

export interface RealNodeOptions {
  fault?: NodeFault;
  /** The registry's http.secret; a different one breaks uploads that change node. */
  httpSecret?: string;
}

/** What every node of the cluster shares. */
export interface RealClusterOptions {
  /** Turns on each registry's storage-driver health check at this interval (see RealRegistryOptions). */
  storageHealthInterval?: string;
  /**
   * Each node's token service issues tokens for any `service` a client names, copied into `aud`
   * (a permissive token service; Harbor's answers 400): client-shaped tokens with a wrong audience.
   */
  tokenAnyService?: boolean;
  /**
   * The port each node is reached on from outside, which its registry names in its realm: the
   * port of the node's own nginx when one stands in front of its core (startNginxFrontedCluster).
   * By default the core's own port.
   */
  outsidePorts?: readonly number[];
}

export interface RealHarborCluster {
  /** The storage folder every registry serves from. */
  storage: string;
  keys: TokenKeyPair;
  foreign: TokenKeyPair;
  nodes: SimulatedHarborNode[];
  registries: RealRegistry[];
  /** Stops node i (its Harbor core and registry) and starts it again on the same port with new options. */
  restart(i: number, opts: RealNodeOptions): Promise<void>;
  /** Node i dies: its registry is SIGKILLed and its Harbor core closed, so connections to it are refused. */
  kill(i: number): Promise<void>;
  close(): Promise<void>;
}

export const SHARED_HTTP_SECRET = 'shared-http-secret-for-tests';

/**
 * N Harbor nodes on one shared storage folder: each a real docker-registry behind a simulated
 * Harbor core (token service + /v2/ forwarding). By default one key pair and one http.secret for
 * all; `perNode` makes the seed's misconfigured nodes. Each registry advertises its own node as
 * realm, as a node configured with its own address does; harbor-lb must rewrite that.
 */
export async function startRealHarborCluster(
  dir: string,
  n: number,
  perNode: RealNodeOptions[] = [],
  shared: RealClusterOptions = {},
): Promise<RealHarborCluster> {
  const storage = join(dir, 'shared-storage');
  mkdirSync(storage, { recursive: true });
  chmodSync(storage, 0o755);
  const keys = makeTokenKeyPair(dir, 'cluster');
  const foreign = makeTokenKeyPair(dir, 'foreign');
  const nodes: SimulatedHarborNode[] = [];
  const registries: RealRegistry[] = [];

  const startNode = async (i: number, opts: RealNodeOptions, port: number): Promise<void> => {
    const fault = opts.fault ?? 'none';
    const outside = shared.outsidePorts?.[i] ?? port;
    const signer = fault === 'foreign-key' ? foreign : keys;
    const trusted = fault === 'none' ? keys : foreign;
    registries[i] = await startRealRegistry({
      dir,
      name: `h${i + 1}`,
      storage,
      rootCertBundle: trusted.certFile,
      realm: `http://127.0.0.1:${outside}/service/token`,
      httpSecret: opts.httpSecret ?? SHARED_HTTP_SECRET,
      storageHealthInterval: shared.storageHealthInterval,
    });
    nodes[i] = await new SimulatedHarborNode({
      name: `h${i + 1}`,
      signingKey: signer.key,
      registryUrl: registries[i]!.url,
      port,
      tokenAnyService: shared.tokenAnyService,
    }).start();
  };
  const close = async () => {
    await Promise.all(nodes.map((x) => x.close()));
    await Promise.all(registries.map((r) => r.stop()));
  };
  try {
    for (let i = 0; i < n; i++) {
      for (let attempt = 1; ; attempt++) {
        // The node's port must be known before its registry's realm can name it.
        const probe = await new SimulatedHarborNode({ name: 'port-probe', signingKey: keys.key }).start();
        const port = probe.port;
        await probe.close();
        try {
          await startNode(i, perNode[i] ?? {}, port);
          break;
        } catch (err) {
          // Another test process took the port while the registry started: another port.
          if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 5) throw err;
          await registries[i]?.stop();
          registries.length = i;
        }
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    storage,
    keys,
    foreign,
    nodes,
    registries,
    async restart(i, opts) {
      const port = nodes[i]!.port;
      await nodes[i]!.close();
      await registries[i]!.stop();
      await startNode(i, opts, port);
    },
    async kill(i) {
      const registry = registries[i]!.process;
      if (registry.child.exitCode === null && registry.child.signalCode === null) {
        const exited = new Promise<void>((resolve) => registry.child.once('exit', () => resolve()));
        registry.kill('SIGKILL');
        await exited;
      }
      await nodes[i]!.close();
    },
    close,
  };
}

/** A real cluster as it looks from outside: each node's Harbor core behind its own nginx. */
export interface NginxFrontedCluster {
  cluster: RealHarborCluster;
  /** Node i's nginx, in front of cluster.nodes[i]. */
  fronts: RunningNginx[];
  /** What harbor-lb's nodes[] point at: the nginx of each node. */
  urls: string[];
  close(): Promise<void>;
}

/**
 * startRealHarborCluster with an nginx set up as Harbor's own (see nginx.ts) in front of each
 * node's core, with the given nginx timeouts: a Harbor node as harbor-lb meets it. Each registry
 * names its node's nginx in its realm, as a node configured with its external address does.
 * restart(i) and kill(i) act behind the nginx, which stays up (as Harbor's proxy container does
 * when core or registry die): harbor-lb then gets nginx's 502s, not refused connections.
 */
export async function startNginxFrontedCluster(
  dir: string,
  n: number,
  timeouts: NginxTimeouts,
  perNode: RealNodeOptions[] = [],
  shared: Omit<RealClusterOptions, 'outsidePorts'> = {},
): Promise<NginxFrontedCluster> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const cluster = await startRealHarborCluster(dir, n, perNode, { ...shared, outsidePorts: ports });
  const fronts: RunningNginx[] = [];
  const close = async () => {
    await Promise.all(fronts.map((f) => f.stop()));
    await cluster.close();
  };
  try {
    for (let i = 0; i < n; i++) fronts.push(await startNginx({ dir: join(dir, `nginx-h${i + 1}`), upstream: cluster.nodes[i]!.url, port: ports[i], ...timeouts }));
  } catch (err) {
    await close();
    throw err;
  }
  return { cluster, fronts, urls: fronts.map((f) => f.url), close };
}
