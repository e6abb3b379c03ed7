import assert from 'node:assert/strict';
import { describe, it, mock, type TestContext } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { OutlierDetector } from '../../../src/health/outlier-detector.js';
import { WorkerPool } from '../../../src/workers/worker-pool.js';
import { createSystemClock, type Clock } from '../../../src/util/clock.js';
import type { Parts } from '../../../src/app/compose.js';
import type { NodeMirror } from '../../../src/workers/messages.js';
import { FakeClock } from '../../support/fake-clock.js';

/**
 * A stand-in worker: listens at once, prints each node mirror it is sent, and once it has the
 * first one sends one verdict batch: n1 answered well.
 */
const FAKE_WORKER = `
let sent = false;
process.on('message', (msg) => {
  if (msg.t === 'start') { process.send({ t: 'listening', port: 1 }); return; }
  if (msg.t === 'nodes') {
    process.stdout.write(JSON.stringify({ at: Date.now(), mirror: msg.mirror }) + '\\n');
    if (!sent) {
      sent = true;
      const n1 = msg.mirror.nodes[0];
      setTimeout(() => { process.stdout.write(JSON.stringify({ verdictAt: Date.now() }) + '\\n'); process.send({ t: 'verdicts', items: [[{ name: n1.name, url: n1.url }, { kind: 'answered', route: 'v2' }]] }); }, 20);
    }
  }
  if (msg.t === 'drain') process.exit(0);
});
`;

/**
 * A stand-in worker: listens at once, prints each node mirror it is sent; on the first, sends a
 * 503 from n1 (its count is cleared by the passing check it asks for, but the 503 is held as
 * maybe the cluster's), and once a mirror wants n1's good answers, sends one.
 */
const FAILS_THEN_ANSWERS = `
let failed = false, answered = false;
process.on('message', (msg) => {
  if (msg.t === 'start') { process.send({ t: 'listening', port: 1 }); return; }
  if (msg.t === 'nodes') {
    process.stdout.write(JSON.stringify({ mirror: msg.mirror }) + '\\n');
    const n1 = msg.mirror.nodes[0];
    const ref = { name: n1.name, url: n1.url };
    if (!failed) { failed = true; process.send({ t: 'verdicts', items: [[ref, { kind: 'gateway', status: 503, route: 'v2' }]] }); }
    else if (!answered && msg.mirror.answersWanted.includes('n1')) { answered = true; process.send({ t: 'verdicts', items: [[ref, { kind: 'answered', route: 'v2' }]] }); }
  }
  if (msg.t === 'drain') process.exit(0);
});
`;

/** A stand-in worker that listens at once and prints each node mirror it is sent. */
const MIRROR_PRINTER = `
process.on('message', (msg) => {
  if (msg.t === 'start') { process.send({ t: 'listening', port: 1 }); return; }
  if (msg.t === 'nodes') process.stdout.write(JSON.stringify({ mirror: msg.mirror }) + '\\n');
  if (msg.t === 'drain') process.exit(0);
});
`;

/**
 * A control plane of three nodes whose worker pool runs one stand-in worker (`script`), with the
 * regular 250 ms mirror held still: only what events and verdict batches queue goes out. All of
 * it is stopped after the test.
 */
function controlPlane(t: TestContext, script: string, clock: Clock) {
  mock.timers.enable({ apis: ['setInterval'] });
  const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-verdict-mirror-'));
  const entry = join(dir, 'worker.mjs');
  writeFileSync(entry, script);
  const cfg = validateConfig({ nodes: [1, 2, 3].map((i) => ({ name: `n${i}`, url: `http://127.0.0.1:${i}` })), health: { passive: { clusterWindow: '10s' } } });
  const logger = pino({ level: 'silent' });
  const nodes = new NodeSet(cfg, clock);
  const outliers = new OutlierDetector(nodes, cfg.health.passive, clock, logger, async () => ({ ok: true, detail: 'ok' }) as never);
  // The worker prints each mirror it is sent: each wait ends at the first that matches, or false after 5 s.
  const waiting: Array<{ match: (m: NodeMirror) => boolean; resolve: () => void }> = [];
  const logDestination = {
    write: (line: string) => {
      const m = (JSON.parse(line) as { mirror?: NodeMirror }).mirror;
      if (m === undefined) return;
      for (const w of waiting.splice(0)) {
        if (w.match(m)) w.resolve();
        else waiting.push(w);
      }
    },
  };
  const heard = (match: (m: NodeMirror) => boolean): Promise<boolean> =>
    Promise.race([new Promise<true>((resolve) => waiting.push({ match, resolve: () => resolve(true) })), new Promise<false>((resolve) => setTimeout(resolve, 5000, false).unref())]);
  const parts = { nodes, outliers, skew: { tokensAway: () => false }, logger, trustProbe: undefined } as unknown as Parts;
  const pool = new WorkerPool(parts, cfg, { count: 1, entry, logDestination }, clock);
  t.after(async () => {
    await pool.close(0);
    mock.timers.reset();
    outliers.stop();
    await nodes.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { nodes, outliers, pool, heard };
}

describe('WorkerPool: what the workers hear of node state, and when', () => {
  it('a node back to reachable (its state unchanged: its check fails, panic routes over reachable nodes) reaches the workers at once', async (t) => {
    const { nodes, outliers, pool, heard } = controlPlane(t, FAKE_WORKER, createSystemClock());
    // Every node's check fails (say a Harbor component is down everywhere): panic, over the nodes that answer.
    for (const n of nodes.all) nodes.setCheck(n, 'unhealthy', 'component down');
    const n1 = nodes.all[0]!;
    // n1 refused a connection once: out of the panic set.
    outliers.record(n1, { kind: 'unreachable', code: 'ECONNREFUSED' });
    assert.equal(nodes.conditionsOf(n1).reachable, false);
    assert.ok(!nodes.available().includes(n1));
    // The stand-in worker sends one batch, n1 answered well, once it has the first mirror.
    const n1Back = heard((m) => m.nodes.find((n) => n.name === 'n1')?.reachable === true);
    await pool.start(0);
    const back = await n1Back;
    assert.equal(nodes.conditionsOf(n1).reachable, true, 'the control plane has n1 back');
    assert.ok(nodes.available().includes(n1), 'the control plane routes over n1 again');
    assert.equal(back, true, 'the workers heard n1 answers again');
  });

  it('a cluster-wide failure that ends by its quiet window, with no verdict, reaches the workers at once', async (t) => {
    const clock = new FakeClock();
    const { nodes, outliers, pool, heard } = controlPlane(t, MIRROR_PRINTER, clock);
    for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
    await pool.start(0);
    const begun = heard((m) => m.clusterFailures.length > 0);
    for (const n of nodes.all) outliers.record(n, { kind: 'gateway', status: 503, route: 'v2' });
    assert.equal(await begun, true, 'the workers heard the cluster failure begin');
    const over = heard((m) => m.clusterFailures.length === 0);
    clock.advance(10_000);
    assert.equal(outliers.clusterFailure, undefined, 'over in the control plane');
    assert.equal(await over, true, 'the workers heard it end, with no verdict and the regular mirror held still');
  });

  it("the nodes whose good answers are wanted: a failure adds its node, and the good answer that clears it takes it away, at once", async (t) => {
    const { nodes, pool, heard } = controlPlane(t, FAILS_THEN_ANSWERS, createSystemClock());
    for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
    const wanted = heard((m) => m.answersWanted.join() === 'n1');
    await pool.start(0);
    assert.equal(await wanted, true, "after n1's 503, the workers send its good answers");
    const cleared = heard((m) => m.answersWanted.length === 0);
    assert.equal(await cleared, true, 'its good answer took the 503 back: a batch of good answers alone sends the mirror, with the regular one held still');
  });
});
