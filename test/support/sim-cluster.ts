import type { KeyObject } from 'node:crypto';
import { SimulatedHarborNode, type SimulatedHarborNodeOptions } from '../../src/demo/harbor-node.js';
import { makeTokenKeyPair, type TokenKeyPair } from './pki.js';

export type NodeFault = 'none' | 'foreign-key' | 'foreign-trust';

export interface SimCluster {
  cluster: TokenKeyPair;
  foreign: TokenKeyPair;
  nodes: SimulatedHarborNode[];
  /** Restarts node i on its port with the given fault (e.g. 'none' to fix it). */
  restart(i: number, fault: NodeFault): Promise<void>;
  close(): Promise<void>;
}

/** Node options for a fault: the seed's misconfigured node signs with and trusts a foreign pair. */
export function faultKeys(fault: NodeFault, cluster: TokenKeyPair, foreign: TokenKeyPair): { signingKey: KeyObject; registryTrusts: KeyObject[] } {
  switch (fault) {
    case 'foreign-key':
      return { signingKey: foreign.key, registryTrusts: [foreign.key] };
    case 'foreign-trust':
      return { signingKey: cluster.key, registryTrusts: [foreign.key] };
    default:
      return { signingKey: cluster.key, registryTrusts: [cluster.key] };
  }
}

/** Simulated Harbor nodes (token service + token-checking /v2/), one key pair for the cluster, faults per node. */
export async function startSimCluster(dir: string, faults: NodeFault[], common: Partial<SimulatedHarborNodeOptions> = {}): Promise<SimCluster> {
  const cluster = makeTokenKeyPair(dir, 'cluster');
  const foreign = makeTokenKeyPair(dir, 'foreign');
  const nodes = await Promise.all(faults.map((f, i) => new SimulatedHarborNode({ name: `h${i + 1}`, ...common, ...faultKeys(f, cluster, foreign) }).start()));
  return {
    cluster,
    foreign,
    nodes,
    async restart(i, fault) {
      const port = nodes[i]!.port;
      await nodes[i]!.close();
      nodes[i] = await new SimulatedHarborNode({ name: `h${i + 1}`, port, ...common, ...faultKeys(fault, cluster, foreign) }).start();
    },
    close: async () => void (await Promise.all(nodes.map((n) => n.close()))),
  };
}
