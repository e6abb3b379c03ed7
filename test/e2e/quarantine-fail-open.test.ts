import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeOciImage } from '../../src/demo/oci-image.js';
import type { StatusDocument } from '../../src/admin/status.js';
import type { StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { Skopeo } from '../support/skopeo.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

/** A log line that must come, or the test fails after `ms` naming what it waited for (never a hang). */
const logLine = (lb: StartedApp, what: string, match: (l: Record<string, unknown>) => boolean, ms = 30_000) => lb.logs.waitFor(match, ms, what);

async function status(lb: StartedApp): Promise<StatusDocument> {
  return JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as StatusDocument;
}

interface RoundTrips {
  /** Rounds whose login, push and pull all succeeded. */
  ok: number;
  failures: string[];
  /** Routing lines the round trips produced. */
  routed: Record<string, unknown>[];
  ms: number;
}

/** `rounds` skopeo login/push/pull round trips through harbor-lb; the failures with skopeo's words, and where they went. */
async function roundTrips(lb: StartedApp, skopeo: Skopeo, imageDir: string, tag: string, rounds: number): Promise<RoundTrips> {
  const host = new URL(lb.url).host;
  const before = lb.logs.requests().length;
  const started = Date.now();
  const failures: string[] = [];
  let ok = 0;
  for (let i = 0; i < rounds; i++) {
    const failed = failures.length;
    const login = await skopeo.run(['login', '--tls-verify=false', '-u', 'admin', '-p', 'Harbor12345', host]);
    if (login.code !== 0) failures.push(`login ${tag}${i}: ${login.stderr}`);
    const ref = `docker://${host}/library/fail-open:${tag}${i}`;
    const push = await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${imageDir}:v1`, ref]);
    if (push.code !== 0) failures.push(`push ${tag}${i}: ${push.stderr}`);
    const pull = await skopeo.run(['copy', '--src-tls-verify=false', ref, `dir:${skopeo.writableDir(`pull-${tag}${i}`)}`]);
    if (pull.code !== 0) failures.push(`pull ${tag}${i}: ${pull.stderr}`);
    if (failures.length === failed) ok++;
  }
  return { ok, failures, routed: lb.logs.requests().slice(before), ms: Date.now() - started };
}

const where = (routed: Record<string, unknown>[]) => [...new Set(routed.map((l) => String(l.node)))].sort();
const ruleLines = (lb: StartedApp, active: boolean) => lb.logs.lines.filter((l) => l.event === 'quarantine_fail_open' && l.active === active);

/**
 * Issue 9, "quarantine locks the last node out": one node of three signs with and trusts its own
 * (self-consistent) key pair and is quarantined; then the two good nodes die. The odd node can
 * serve every client on its own, so the quarantine fails open, and closes again once a good node
 * is back.
 */
describe('real registries: the quarantined node is the last one left', () => {
  it('serves skopeo login/push/pull through the quarantined node while the good nodes are dead, and re-quarantines it when one returns', async (t) => {
    const { dir, cluster, lb } = await realClusterBehindLb(
      t,
      'e2e-fail-open',
      3,
      (c) => ({ proxy: { workers: 2 }, token: { rootCert: c.keys.certFile, probe: { interval: '500ms' } }, health: { enabled: true, interval: '200ms', timeout: '1s' } }),
      [{}, {}, { fault: 'foreign-key' }],
    );
    const skopeo = new Skopeo(dir);
    const image = makeOciImage(join(dir, 'image'), [256 * 1024]);

    // 1. n3 is found out and quarantined while n1 and n2 serve.
    await logLine(lb, 'n3 quarantined', (l) => l.event === 'node_state' && l.node === 'n3' && l.to === 'quarantined');
    const flag = lb.logs.lines.find((l) => l.event === 'node_flag' && l.node === 'n3' && l.raised === true && l.code !== 'REALM_BYPASSES_PROXY');
    assert.equal(flag?.code, 'TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.equal(ruleLines(lb, true).length, 0, 'no fail-open while good nodes serve');

    // 2. The good nodes die: connections to them are refused, and the checks say so.
    const killedAt = Date.now();
    await Promise.all([cluster.kill(0), cluster.kill(1)]);
    for (const name of ['n1', 'n2']) await logLine(lb, `${name} unhealthy`, (l) => l.event === 'node_state' && l.node === name && l.to === 'unhealthy');
    const downMs = Date.now() - killedAt;
    const during = await status(lb);
    const open = await roundTrips(lb, skopeo, image.dir, 'open', 3);
    const stillOpen = await status(lb);
    // The numbers first, so a failing run reports them too.
    t.diagnostic(
      `good nodes down ${downMs} ms after the kill; with n3 the only node alive: ${open.ok}/3 round trips succeeded ` +
        `(${open.failures.length} failed steps, ${open.routed.length} requests, ${open.routed.filter((l) => l.status === 503).length} answered 503, ` +
        `nodes ${where(open.routed).join(',')}, ${open.ms} ms)`,
    );

    assert.deepEqual(open.failures, [], 'every round trip succeeds through the quarantined node');
    assert.deepEqual(where(open.routed), ['n3'], 'the round trips went to n3, the only node alive');
    assert.equal(open.routed.filter((l) => l.status === 503).length, 0, 'harbor-lb never answered 503');
    const opened = await logLine(lb, 'quarantine_fail_open active:true', (l) => l.event === 'quarantine_fail_open' && l.active === true, 5_000);
    assert.deepEqual(opened.nodes, ['n3']);
    for (const snapshot of [during, stillOpen]) {
      const n3 = snapshot.nodes.find((n) => n.name === 'n3')!;
      assert.notEqual(n3.state, 'quarantined', 'the quarantine is not in force while n3 is the only node that can serve');
      assert.ok(
        n3.flags.some((f) => f.code === 'TOKEN_SIGNED_WITH_FOREIGN_KEY'),
        `n3 is still flagged: ${JSON.stringify(n3.flags)}`,
      );
      assert.notEqual(n3.conditions.quarantine, null, 'the quarantine is still asked for');
      for (const dead of snapshot.nodes.filter((n) => n.name !== 'n3')) assert.equal(dead.state, 'unhealthy', `${dead.name} is down`);
    }
    assert.equal(ruleLines(lb, true).length, 1, 'quarantine_fail_open active:true logged once');
    assert.equal(ruleLines(lb, false).length, 0);

    // 3. A good node comes back: the quarantine is in force again.
    const restartedAt = Date.now();
    await cluster.restart(0, {});
    const closed = await logLine(lb, 'quarantine_fail_open active:false', (l) => l.event === 'quarantine_fail_open' && l.active === false);
    const closeMs = Date.now() - restartedAt;
    assert.ok(closed);
    const after = await status(lb);
    assert.equal(after.nodes.find((n) => n.name === 'n3')!.state, 'quarantined');
    assert.equal(after.nodes.find((n) => n.name === 'n1')!.state, 'healthy');

    const back = await roundTrips(lb, skopeo, image.dir, 'back', 1);
    assert.deepEqual(back.failures, [], 'the round trip after the good node returned succeeds');
    assert.deepEqual(where(back.routed), ['n1'], 'and goes to the good node only');
    assert.equal(ruleLines(lb, true).length, 1, 'fail-open logged once each way');
    assert.equal(ruleLines(lb, false).length, 1);

    t.diagnostic(
      `quarantine closed ${closeMs} ms after n1's restart began; ${back.ok}/1 round trip succeeded on n1 ` +
        `(${back.routed.length} requests, ${back.ms} ms)`,
    );
  });
});
