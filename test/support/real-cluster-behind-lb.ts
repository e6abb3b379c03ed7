import type { ConfigInput } from '../../src/config/schema.js';
import { startApp, type StartedApp } from './app.js';
import { startRealHarborCluster, type RealClusterOptions, type RealHarborCluster, type RealNodeOptions } from './real-cluster.js';
import { makeTempDir } from './tmp.js';

export interface BehindLb {
  dir: string;
  cluster: RealHarborCluster;
  lb: StartedApp;
}

/**
 * An end-to-end test's usual start: a temporary folder, `n` real registries behind simulated
 * Harbor cores (`perNode`, `shared`: see startRealHarborCluster), and harbor-lb in front of them
 * with `overrides` (a function when they name the cluster's keys). All of it is stopped and
 * removed when the test ends (hooks registered as the tests did by hand: folder, cluster, harbor-lb).
 */
export async function realClusterBehindLb(
  t: { after(fn: () => unknown): void },
  prefix: string,
  n: number,
  overrides: Partial<ConfigInput> | ((cluster: RealHarborCluster) => Partial<ConfigInput>),
  perNode: RealNodeOptions[] = [],
  shared: RealClusterOptions = {},
): Promise<BehindLb> {
  const tmp = makeTempDir(prefix);
  t.after(tmp.remove);
  const cluster = await startRealHarborCluster(tmp.dir, n, perNode, shared);
  t.after(() => cluster.close());
  const lb = await startApp(
    cluster.nodes.map((node) => node.url),
    typeof overrides === 'function' ? overrides(cluster) : overrides,
  );
  t.after(() => lb.close());
  return { dir: tmp.dir, cluster, lb };
}
