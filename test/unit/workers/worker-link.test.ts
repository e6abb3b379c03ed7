import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { ProcessControlLink } from '../../../src/workers/control-link.js';
import type { FromWorker, PinOp } from '../../../src/workers/messages.js';
import { RemotePinStore } from '../../../src/workers/remote-pin-store.js';
import { workerConfig } from '../../../src/workers/worker-config.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('request workers: what crosses to the control plane', () => {
  it('sends attempt verdicts in order, a run of the same answer once, and before any message that must follow them', () => {
    const sent: FromWorker[] = [];
    const link = new ProcessControlLink((m) => sent.push(m));
    const n1 = { name: 'n1', url: 'http://127.0.0.1:1' };
    const n2 = { name: 'n2', url: 'http://127.0.0.1:2' };
    const n1moved = { name: 'n1', url: 'http://127.0.0.1:11' };
    for (let i = 0; i < 50; i++) link.verdict(n1, { kind: 'answered', route: 'v2' });
    link.verdict(n1, { kind: 'failed', code: 'ECONNRESET' });
    link.verdict(n1, { kind: 'answered', route: 'v2' });
    link.verdict(n1, { kind: 'answered', route: 'token' });
    link.verdict(n1moved, { kind: 'answered', route: 'token' });
    link.verdict(n2, { kind: 'answered', route: 'v2' });
    assert.deepEqual(sent, [], 'batched, not one message per request');
    link.slowAnswer(n2);
    assert.deepEqual(sent, [
      {
        t: 'verdicts',
        items: [
          [n1, { kind: 'answered', route: 'v2' }],
          [n1, { kind: 'failed', code: 'ECONNRESET' }],
          [n1, { kind: 'answered', route: 'v2' }],
          [n1, { kind: 'answered', route: 'token' }],
          [n1moved, { kind: 'answered', route: 'token' }],
          [n2, { kind: 'answered', route: 'v2' }],
        ],
      },
      { t: 'slow', node: n2 },
    ]);
    link.close();
  });

  it('round robin over three nodes: a batch of good answers is one item per node and route; a failure starts the count again', () => {
    const sent: FromWorker[] = [];
    const link = new ProcessControlLink((m) => sent.push(m));
    const nodes = [1, 2, 3].map((i) => ({ name: `n${i}`, url: `http://127.0.0.1:${i}` }));
    const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    for (let i = 0; i < 300; i++) link.verdict(nodes[i % 3]!, { kind: 'answered', route: i % 30 === 0 ? 'token' : 'v2' });
    link.verdict(n2, { kind: 'gateway', status: 503, route: 'v2' });
    for (let i = 0; i < 30; i++) link.verdict(nodes[i % 3]!, { kind: 'answered', route: 'v2' });
    link.flush();
    for (let i = 0; i < 3; i++) link.verdict(nodes[i % 3]!, { kind: 'answered', route: 'v2' });
    link.flush();
    const ok = (route: string) => ({ kind: 'answered', route });
    assert.deepEqual(sent, [
      {
        t: 'verdicts',
        items: [
          [n1, ok('token')],
          [n2, ok('v2')],
          [n3, ok('v2')],
          [n1, ok('v2')],
          [n2, { kind: 'gateway', status: 503, route: 'v2' }],
          [n1, ok('v2')],
          [n2, ok('v2')],
          [n3, ok('v2')],
        ],
      },
      // A new batch says each node again.
      { t: 'verdicts', items: [[n1, ok('v2')], [n2, ok('v2')], [n3, ok('v2')]] },
    ]);
    link.close();
  });

  it('sends good answers only for the nodes the control plane waits on, and for a node this worker saw fail within 1 s', () => {
    const sent: FromWorker[] = [];
    let now = 1_000_000;
    const link = new ProcessControlLink((m) => sent.push(m), () => now);
    const n1 = { name: 'n1', url: 'http://127.0.0.1:1' };
    const n2 = { name: 'n2', url: 'http://127.0.0.1:2' };
    const ok = { kind: 'answered', route: 'v2' } as const;
    const reset = { kind: 'failed', code: 'ECONNRESET' } as const;
    link.want([]);
    for (let i = 0; i < 100; i++) link.verdict(i % 2 ? n1 : n2, ok);
    link.flush();
    assert.deepEqual(sent, [], 'a healthy cluster: no verdicts at all');
    link.verdict(n1, reset);
    link.verdict(n1, ok);
    link.verdict(n2, ok);
    link.flush();
    assert.deepEqual(sent.splice(0), [{ t: 'verdicts', items: [[n1, reset], [n1, ok]] }], "its own failure, then its answer: in the order they came, before the mirror wants n1");
    now += 999;
    link.verdict(n1, ok);
    link.flush();
    assert.deepEqual(sent.splice(0), [{ t: 'verdicts', items: [[n1, ok]] }]);
    now += 1;
    link.verdict(n1, ok);
    link.flush();
    assert.deepEqual(sent.splice(0), [], 'a second after its failure, the mirror says');
    link.want(['n2']);
    link.verdict(n1, ok);
    link.verdict(n2, ok);
    link.flush();
    assert.deepEqual(sent.splice(0), [{ t: 'verdicts', items: [[n2, ok]] }], 'the nodes the control plane waits on');
    link.close();
  });

  it('shares out node connection budgets among workers, adding up to the budget, never below one', () => {
    const cfg = validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }], proxy: { maxConnectionsPerNode: 128, maxUploadConnectionsPerNode: 3 } });
    const shares = [1, 2, 3, 4].map((i) => workerConfig(cfg, 4, i)).map((w) => [w.proxy.maxConnectionsPerNode, w.proxy.maxUploadConnectionsPerNode]);
    assert.deepEqual(shares, [[32, 1], [32, 1], [32, 1], [32, 1]], 'three upload connections: still one each');
    // Found by a probe: 128 over 3 workers was 43 each, 129 connections to a node.
    const three = [1, 2, 3].map((i) => workerConfig(cfg, 3, i).proxy.maxConnectionsPerNode);
    assert.deepEqual(three, [43, 43, 42]);
    assert.equal(cfg.proxy.maxConnectionsPerNode, 128, 'the control plane keeps its own');
  });
});

describe('RemotePinStore: the control plane\'s memory pins, from a worker', () => {
  const store = (answer: (op: PinOp) => unknown) => {
    const clock = new FakeClock();
    const asked: PinOp[] = [];
    const link = { verdict() {}, slowAnswer() {}, suspect() {}, goodIssuer() {}, verified() {}, csrfSuspected() {}, pin: async (op: PinOp) => (asked.push(op), answer(op)), flights: { claim: async () => 'lead' as const, started() {}, settled() {}, closed() {} }, cache: { added() {}, verified() {} } };
    return { s: new RemotePinStore(link, clock, 100), clock, asked };
  };

  it('reuses a pin it read for 5 s, then asks again', async () => {
    const { s, clock, asked } = store(() => 'n2');
    assert.equal(await s.get('upload:abc', 1000), 'n2');
    assert.equal(await s.get('upload:abc', 1000), 'n2');
    assert.equal(asked.length, 1);
    clock.advance(5001);
    assert.equal(await s.get('upload:abc', 1000), 'n2');
    assert.equal(asked.length, 2);
  });

  it('takes "no pin" for 1 s for an anonymous client (its traffic asks once), never for a named client or an upload', async () => {
    const { s, clock, asked } = store((op) => (op.op === 'get' ? null : true));
    for (let i = 0; i < 10; i++) assert.equal(await s.get('client:xyz', undefined, true), undefined);
    assert.equal(asked.length, 1);
    clock.advance(1001);
    await s.get('client:xyz', undefined, true);
    assert.equal(asked.length, 2);
    for (let i = 0; i < 3; i++) await s.get('client:named');
    assert.equal(asked.length, 5, "a named client's pin may have been made by another worker a moment ago");
    for (let i = 0; i < 3; i++) await s.get('upload:u1');
    assert.equal(asked.length, 8, 'an upload pin may be made by another worker at any moment');
  });

  it('requests that miss together share one read: an expired "no pin" is asked once, not by every request in the round trip', async () => {
    const clock = new FakeClock();
    const asked: PinOp[] = [];
    const answers: Array<(v: unknown) => void> = [];
    const link = { verdict() {}, slowAnswer() {}, suspect() {}, goodIssuer() {}, verified() {}, csrfSuspected() {}, pin: (op: PinOp) => (asked.push(op), new Promise<unknown>((resolve) => answers.push(resolve))), flights: { claim: async () => 'lead' as const, started() {}, settled() {}, closed() {} }, cache: { added() {}, verified() {} } };
    const s = new RemotePinStore(link, clock, 100);
    const reads = Array.from({ length: 15 }, () => s.get('client:anon', 30_000, true));
    assert.equal(asked.length, 1, 'one question for fifteen requests');
    answers[0]!(null);
    assert.deepEqual(await Promise.all(reads), Array(15).fill(undefined));
    assert.equal(s.get('client:anon', 30_000, true), undefined, '"no pin" is then known for a second');
    clock.advance(1001);
    const again = s.get('client:anon', 30_000, true);
    assert.equal(asked.length, 2, 'asked again once it expired');
    // A write after a read was sent: later reads do not take that read's answer, and its answer,
    // arriving last, is not kept.
    void s.delete('client:anon');
    const afterWrite = s.get('client:anon', 30_000, true);
    assert.deepEqual(asked.map((o) => o.op), ['get', 'get', 'delete', 'get']);
    answers[2]!(true);
    answers[3]!(null);
    assert.equal(await afterWrite, undefined);
    answers[1]!('n1');
    assert.equal(await again, 'n1', 'the requests that shared the earlier read take its answer');
    assert.equal(s.get('client:anon', 30_000, true), undefined, "the near cache holds the later read's answer");
    assert.equal(asked.length, 4);
  });

  it('a pin it wrote is known at once; setIfAbsent answers the first writer', async () => {
    const { s, asked } = store((op) => (op.op === 'setIfAbsent' ? 'n1' : op.op === 'get' ? null : true));
    assert.equal(await s.setIfAbsent('upload:u2', 'n3', 60_000), 'n1');
    assert.equal(await s.get('upload:u2'), 'n1');
    assert.equal(asked.filter((o) => o.op === 'get').length, 0);
  });

  it('a control plane that does not answer costs the pin, not the request; counted as an error', async () => {
    const { s } = store(() => undefined);
    assert.equal(await s.get('upload:u3'), undefined);
    assert.equal(await s.setIfAbsent('upload:u3', 'n2', 1000), 'n2');
    assert.equal(s.errors, 2);
  });
});

describe('NodeSet.mirror/follow: a worker\'s node set follows the control plane\'s', () => {
  it('derives the same state from the mirrored conditions, with flags, and follows them back', () => {
    const clock = new FakeClock();
    const cfg = validateConfig({ nodes: ['n1', 'n2', 'n3'].map((name, i) => ({ name, url: `http://127.0.0.1:${i + 1}` })) });
    const control = new NodeSet(cfg, clock);
    const worker = new NodeSet(cfg, clock);
    const [c1, c2, c3] = control.all;
    control.setCheck(c1!, 'healthy', 'ok');
    control.setCheck(c2!, 'healthy', 'ok');
    control.setCheck(c3!, 'healthy', 'ok');
    control.eject(c2!, clock.now() + 30_000, 'failed requests');
    control.setDrained(c3!, true);
    control.setFlag(c1!, { code: 'NODE_CLOCK_SKEW', message: 'off', since: 'now', fix: 'ntp', severity: 'warning' });
    worker.follow(control.mirror());
    assert.deepEqual(worker.all.map((n) => n.state), ['healthy', 'unhealthy', 'draining']);
    assert.deepEqual(worker.available().map((n) => n.name), ['n1']);
    assert.deepEqual([...worker.all[0]!.flags.keys()], ['NODE_CLOCK_SKEW']);

    control.endEjection(c2!, 'check passed');
    control.setDrained(c3!, false);
    control.deleteFlag(c1!, 'NODE_CLOCK_SKEW');
    worker.follow(control.mirror());
    assert.deepEqual(worker.all.map((n) => n.state), ['healthy', 'healthy', 'healthy']);
    assert.equal(worker.all[0]!.flags.size, 0);
  });
});
