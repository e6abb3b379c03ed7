import { startApp, type StartedApp } from './app.js';
import { startSimCluster, type SimCluster } from './sim-cluster.js';
import { makeTempDir } from './tmp.js';

/** Three healthy simulated nodes on the cluster key, harbor-lb in front verifying tokens (probe off, round robin). */
export async function startTrustedSimCluster(t: { after: (fn: () => unknown) => void }, prefix: string): Promise<{ sim: SimCluster; lb: StartedApp }> {
  const tmp = makeTempDir(prefix);
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, ['none', 'none', 'none']);
  t.after(() => sim.close());
  const lb = await startApp(
    sim.nodes.map((n) => n.url),
    { balance: { policy: 'round-robin' }, token: { rootCert: sim.cluster.certFile, probe: { enabled: false } } },
  );
  t.after(() => lb.close());
  return { sim, lb };
}

/** What routing knows about each node: what a client's request must never change. */
export const nodeEvidence = (lb: StartedApp) =>
  lb.app.nodes.all.map((n) => ({ name: n.name, state: n.state, flags: [...n.flags.keys()], quarantined: lb.app.nodes.conditionsOf(n).quarantine !== undefined, failures: n.traffic.failures }));
