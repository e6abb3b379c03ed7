import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { OutlierDetector } from '../../../src/health/outlier-detector.js';
import { WorkerPool } from '../../../src/workers/worker-pool.js';
import { createSystemClock } from '../../../src/util/clock.js';
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

/** A stand-in worker that listens at once and prints each node mirror it is sent. */
const MIRROR_PRINTER = `
process.on('message', (msg) => {
  if (msg.t === 'start') { process.send({ t: 'listening', port: 1 }); return; }
  if (msg.t === 'nodes') process.stdout.write(JSON.stringify({ mirror: msg.mirror }) + '\\n');
  if (msg.t === 'drain') process.exit(0);
});
`;

describe('WorkerPool: a batch of good answers and the node mirror', () => {
  it('a node back to reachable (its state unchanged: its check fails, panic routes over reachable nodes) reaches the workers at once', async () => {
    // The regular 250 ms mirror is held still: only what the verdict batch itself queues goes out.
    mock.timers.enable({ apis: ['setInterval'] });
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-verdict-mirror-'));
    const entry = join(dir, 'worker.mjs');
    writeFileSync(entry, FAKE_WORKER);
    const cfg = validateConfig({ nodes: [1, 2, 3].map((i) => ({ name: `n${i}`, url: `http://127.0.0.1:${i}` })) });
    const clock = createSystemClock();
    const logger = pino({ level: 'silent' });
    const nodes = new NodeSet(cfg, clock);
    const outliers = new OutlierDetector(nodes, cfg.health.passive, clock, logger, async () => ({ ok: true, detail: 'ok' }) as never);
    // Every node's check fails (say a Harbor component is down everywhere): panic, over the nodes that answer.
    for (const n of nodes.all) nodes.setCheck(n, 'unhealthy', 'component down');
    const n1 = nodes.all[0]!;
    // n1 refused a connection once: out of the panic set.
    outliers.record(n1, { kind: 'unreachable', code: 'ECONNREFUSED' });
    assert.equal(nodes.conditionsOf(n1).reachable, false);
    assert.ok(!nodes.available().includes(n1));

    let heardBack: (v: true) => void = () => {};
    const n1Back = new Promise<true>((resolve) => (heardBack = resolve));
    const logDestination = {
      write: (line: string) => {
        const m = (JSON.parse(line) as { mirror?: NodeMirror }).mirror;
        if (m?.nodes.find((n) => n.name === 'n1')?.reachable === true) heardBack(true);
      },
    };
    const parts = { nodes, outliers, skew: { tokensAway: () => false }, logger, trustProbe: undefined } as unknown as Parts;
    const pool = new WorkerPool(parts, cfg, { count: 1, entry, logDestination }, clock);
    try {
      await pool.start(0);
      // The worker prints each mirror it gets; without the batch's own mirror none comes (the
      // regular one is held still), and the guard ends the wait.
      const heard = await Promise.race([n1Back, new Promise<false>((resolve) => setTimeout(resolve, 5000, false).unref())]);
      assert.equal(nodes.conditionsOf(n1).reachable, true, 'the control plane has n1 back');
      assert.ok(nodes.available().includes(n1), 'the control plane routes over n1 again');
      assert.equal(heard, true, 'the workers heard n1 answers again');
    } finally {
      await pool.close(0);
      mock.timers.reset();
      outliers.stop();
      await nodes.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cluster-wide failure that ends by its quiet window, with no verdict, reaches the workers at once', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-verdict-mirror-'));
    const entry = join(dir, 'worker.mjs');
    writeFileSync(entry, MIRROR_PRINTER);
    const cfg = validateConfig({ nodes: [1, 2, 3].map((i) => ({ name: `n${i}`, url: `http://127.0.0.1:${i}` })), health: { passive: { clusterWindow: '10s' } } });
    const clock = new FakeClock();
    const logger = pino({ level: 'silent' });
    const nodes = new NodeSet(cfg, clock);
    for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
    const outliers = new OutlierDetector(nodes, cfg.health.passive, clock, logger, async () => ({ ok: true, detail: 'ok' }) as never);
    // Resolves once the workers were sent a mirror whose cluster failure is `want`.
    const waiting: Array<{ want: boolean; resolve: () => void }> = [];
    const logDestination = {
      write: (line: string) => {
        const m = (JSON.parse(line) as { mirror?: NodeMirror }).mirror;
        if (m === undefined) return;
        for (const w of waiting.splice(0)) {
          if (w.want === (m.clusterFailure !== undefined)) w.resolve();
          else waiting.push(w);
        }
      },
    };
    const heard = (want: boolean) =>
      Promise.race([new Promise<true>((resolve) => waiting.push({ want, resolve: () => resolve(true) })), new Promise<false>((resolve) => setTimeout(resolve, 5000, false).unref())]);
    const parts = { nodes, outliers, skew: { tokensAway: () => false }, logger, trustProbe: undefined } as unknown as Parts;
    const pool = new WorkerPool(parts, cfg, { count: 1, entry, logDestination }, clock);
    try {
      await pool.start(0);
      const begun = heard(true);
      for (const n of nodes.all) outliers.record(n, { kind: 'gateway', status: 503, route: 'v2' });
      assert.equal(await begun, true, 'the workers heard the cluster failure begin');
      const over = heard(false);
      clock.advance(10_000);
      assert.equal(outliers.clusterFailure, undefined, 'over in the control plane');
      assert.equal(await over, true, 'the workers heard it end, with no verdict and the regular mirror held still');
    } finally {
      await pool.close(0);
      mock.timers.reset();
      outliers.stop();
      await nodes.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
