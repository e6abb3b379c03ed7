import assert from 'node:assert/strict';
import { renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeOciImage } from '../../src/demo/oci-image.js';
import type { StatusDocument } from '../../src/admin/status.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StartedApp } from '../support/app.js';
import { send, type Reply } from '../support/http-client.js';
import type { RealHarborCluster } from '../support/real-cluster.js';
import { Skopeo } from '../support/skopeo.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

const REPO = 'library/hiccup';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const BURST = 30;
/** A token and a UI request before every this many pulls of the burst, and one after it. */
const CHECK_EVERY = 5;
const CHECKS = BURST / CHECK_EVERY + 1;

/**
 * The shared storage fails: its root is swapped for a symlink to itself, so every path under it
 * fails with ELOOP (not "not found", which a registry would answer with a 404). Returns the undo.
 */
function breakStorage(cluster: RealHarborCluster): () => void {
  const away = `${cluster.storage}.away`;
  renameSync(cluster.storage, away);
  symlinkSync(cluster.storage, cluster.storage);
  return () => {
    unlinkSync(cluster.storage);
    renameSync(away, cluster.storage);
  };
}

/**
 * A bounded loop over real requests until `ok`: the registry tells nobody when its storage check
 * flips, its answers are the only evidence. Returns the number of tries it took.
 */
async function until(what: string, ok: () => Promise<boolean>, tries = 2000): Promise<number> {
  for (let i = 1; i <= tries; i++) if (await ok()) return i;
  throw new Error(`${what}: still not so after ${tries} tries`);
}

async function status(lb: StartedApp): Promise<StatusDocument> {
  return JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as StatusDocument;
}

const errorCode = (r: Reply): string | undefined => {
  try {
    return (JSON.parse(r.body.toString()) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
};

interface Case {
  name: string;
  /** The registries' storage-driver health check interval; none: Harbor's own registry config. */
  storageHealthInterval?: string;
  /** What a registry answers while its storage fails. */
  failing: { status: number; code: string };
  health: NonNullable<ConfigInput['health']>;
  /** Whether the active checks see the outage too (the registry component is required). */
  checksSeeIt: boolean;
}

const CASES: Case[] = [
  {
    // The issue's case: every node answers 503 (distribution's storage-driver health check, on in
    // the stock registry config). Checks vouch for the core only, so passive detection alone judges.
    name: 'every node answers 503 (storage health check on), passive detection alone judges',
    storageHealthInterval: '100ms',
    failing: { status: 503, code: 'UNAVAILABLE' },
    health: { enabled: true, interval: '200ms', timeout: '1s', requiredComponents: ['core'] },
    checksSeeIt: false,
  },
  {
    // The same with checks on: every node's health reports its registry unhealthy, so the checks
    // take every node out of the registry routes (health.componentRoutes); with none left for
    // them, pulls still go to the nodes and their answers are passed on, while logins and the UI
    // are served as ever.
    name: 'every node answers 503 and every health check fails with it',
    storageHealthInterval: '100ms',
    failing: { status: 503, code: 'UNAVAILABLE' },
    health: { enabled: true, interval: '200ms', timeout: '1s' },
    checksSeeIt: true,
  },
  {
    // Harbor's own registry config has no storage-driver health check: each failed storage call is a 500.
    name: "every node answers 500 (Harbor's registry config)",
    failing: { status: 500, code: 'UNKNOWN' },
    health: { enabled: true, interval: '200ms', timeout: '1s', requiredComponents: ['core'] },
    checksSeeIt: false,
  },
];

/**
 * Issue 9, "a storage hiccup becomes a cluster outage", against real registries on one shared
 * storage folder: while storage fails, every pull gets the node's own answer (never harbor-lb's
 * 503 "no Harbor node is available"), token and UI requests are answered 200, no node is ejected,
 * and the first pull once storage is back succeeds.
 */
describe('real registries: the shared storage fails for a moment', () => {
  for (const c of CASES) {
    it(c.name, async (t) => {
      const { dir, cluster, lb } = await realClusterBehindLb(
        t,
        'e2e-hiccup',
        3,
        (cl) => ({ proxy: { workers: 2 }, token: { rootCert: cl.keys.certFile, probe: { enabled: false } }, health: c.health }),
        [],
        { storageHealthInterval: c.storageHealthInterval },
      );
      for (const name of ['n1', 'n2', 'n3']) await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === name && l.to === 'healthy', 30_000, `${name} healthy`);

      // An image to pull, and a pull token for it.
      const skopeo = new Skopeo(dir);
      const image = makeOciImage(join(dir, 'image'), [64 * 1024]);
      const host = new URL(lb.url).host;
      const push = await skopeo.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'admin:Harbor12345', `oci:${image.dir}:v1`, `docker://${host}/${REPO}:v1`]);
      assert.equal(push.code, 0, push.stderr);
      const basic = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
      const tokenUrl = `${lb.url}/service/token?service=harbor-registry&scope=${encodeURIComponent(`repository:${REPO}:pull`)}`;
      const tokenReply = await send(tokenUrl, { headers: { authorization: basic } });
      assert.equal(tokenReply.status, 200);
      const bearer = `Bearer ${(JSON.parse(tokenReply.body.toString()) as { token: string }).token}`;
      const paths = [`/v2/${REPO}/manifests/v1`, `/v2/${REPO}/blobs/${image.layerDigests[0]!}`];
      const pull = (base: string, i: number) => send(`${base}${paths[i % paths.length]!}`, { headers: { authorization: bearer, accept: OCI_MANIFEST } });
      for (let i = 0; i < paths.length; i++) assert.equal((await pull(lb.url, i)).status, 200, `${paths[i]!} before the outage`);

      // Storage fails; every registry's own answers say so before the burst starts.
      // (Should the test stop before storage is restored, removing the temp folder removes the loop too.)
      const restore = breakStorage(cluster);
      const triesDown = await until('every registry fails', async () => {
        const answers = await Promise.all(cluster.registries.map((r) => pull(r.url, 0)));
        return answers.every((a) => a.status === c.failing.status);
      });
      if (c.checksSeeIt) {
        for (const name of ['n1', 'n2', 'n3']) {
          await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === name && Array.isArray(l.out) && l.out.includes('v2'), 30_000, `${name}'s checks see its registry fail`);
        }
      }

      const burstStarted = Date.now();
      const pulls: Reply[] = [];
      const tokens: number[] = [];
      const ui: number[] = [];
      const tokenAndUi = async () => {
        tokens.push((await send(tokenUrl, { headers: { authorization: basic } })).status);
        ui.push((await send(`${lb.url}/`)).status);
      };
      // As clients pull: a token, then several registry requests with it.
      for (let i = 0; i < BURST; i++) {
        if (i % CHECK_EVERY === 0) await tokenAndUi();
        pulls.push(await pull(lb.url, i));
      }
      await tokenAndUi();
      const burstMs = Date.now() - burstStarted;
      const during = await status(lb);

      // Storage is back; once every registry serves the image again, so must harbor-lb, at once.
      restore();
      const restoredAt = Date.now();
      const triesUp = await until('every registry serves again', async () => {
        const answers = await Promise.all(cluster.registries.map((r) => pull(r.url, 0)));
        return answers.every((a) => a.status === 200);
      });
      const first = await pull(lb.url, 0);
      const firstMs = Date.now() - restoredAt;
      const next: number[] = [];
      for (let i = 1; i <= 4; i++) next.push((await pull(lb.url, i)).status);
      const after = await status(lb);

      const byNode = pulls.map((r) => r.headers['x-harbor-node']);
      const fromNode = byNode.filter((n) => typeof n === 'string').length;
      const verbatim = pulls.filter((r) => r.status === c.failing.status && errorCode(r) === c.failing.code && typeof r.headers['x-harbor-node'] === 'string').length;
      const ownNoNode = pulls.filter((r) => r.body.toString().includes('no Harbor node is available')).length;
      // A passive ejection says "N requests failed in a row"; a failed check says what the check saw.
      const ejectLines = lb.logs.lines.filter((l) => l.event === 'node_state' && l.to === 'unhealthy' && String(l.why).includes('requests failed in a row'));
      const stateLines = lb.logs.lines.filter((l) => l.event === 'node_state' && l.to === 'unhealthy');
      const degraded = lb.logs.lines.filter((l) => l.event === 'cluster_degraded' && l.active === true);
      const panic = lb.logs.lines.filter((l) => l.event === 'panic' && l.active === true);
      t.diagnostic(
        `registries failing after ${triesDown} tries; burst of ${BURST} pulls in ${burstMs} ms: ` +
          `${verbatim}/${BURST} got the node's ${c.failing.status} ${c.failing.code}, ${fromNode}/${BURST} carried the node's header, ` +
          `${ownNoNode} harbor-lb "no Harbor node is available"; tokens 200: ${tokens.filter((s) => s === 200).length}/${CHECKS}, ` +
          `UI 200: ${ui.filter((s) => s === 200).length}/${CHECKS}; node_state→unhealthy lines: ${stateLines.length} (${ejectLines.length} passive ejections); ` +
          `cluster_degraded on: ${degraded.length}; panic on: ${panic.length}; registries serving again after ${triesUp} tries; ` +
          `first pull after recovery ${first.status} (${firstMs} ms after storage was restored), next 4: ${next.join(',')}`,
      );

      assert.equal(ownNoNode, 0, 'harbor-lb never answered "no Harbor node is available"');
      assert.equal(verbatim, BURST, `every pull got the node's own ${c.failing.status}: ${pulls.map((r) => r.status).join(',')}`);
      assert.equal(fromNode, BURST, 'every pull answer came from a node');
      assert.deepEqual(tokens, Array<number>(CHECKS).fill(200), '/service/token answered 200 throughout');
      assert.deepEqual(ui, Array<number>(CHECKS).fill(200), 'the UI answered 200 throughout');
      assert.equal(first.status, 200, `the first pull after recovery succeeds: ${first.status} ${first.body.toString()}`);
      assert.deepEqual(next, [200, 200, 200, 200]);
      assert.deepEqual(ejectLines, [], 'no node was ejected');
      for (const snapshot of [during, after]) {
        for (const n of snapshot.nodes) assert.equal(n.ejectedUntil, null, `${n.name} is not ejected`);
      }
      if (c.checksSeeIt) {
        // The checks saw the outage on every node: out of the registry routes, healthy for the rest, no panic.
        assert.equal(panic.length, 0, 'no panic routing: every node still serves logins and the UI');
        for (const n of during.nodes) {
          assert.equal(n.state, 'healthy', `${n.name}: ${n.why}`);
          assert.deepEqual(n.routesOut?.routes, ['v2', 'upload'], `${n.name} out of the registry routes`);
        }
        // and the checks alone bring the nodes back into them.
        for (const name of ['n1', 'n2', 'n3']) {
          await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === name && Array.isArray(l.out) && l.out.length === 0, 30_000, `${name} back in every route`);
        }
      } else {
        assert.deepEqual(stateLines, [], 'no node left the healthy state');
        for (const snapshot of [during, after]) {
          for (const n of snapshot.nodes) assert.equal(n.state, 'healthy', `${n.name}: ${n.why}`);
        }
      }
      if (c.failing.status === 503) assert.equal(degraded.length, 1, 'cluster_degraded logged once when it started');
    });
  }
});
