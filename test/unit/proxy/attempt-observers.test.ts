import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget } from '../../../src/balance/retry-budget.js';
import type { AttemptVerdict } from '../../../src/health/outlier-detector.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeTraffic } from '../../../src/nodes/node-traffic.js';
import { AnswerWatch } from '../../../src/health/answer-watch.js';
import { answerWaits, nodeTraffic, outlierReports, retriesInFlight, type AttemptStart } from '../../../src/proxy/attempt-observers.js';
import { FakeClock } from '../../support/fake-clock.js';

const node = { name: 'n1', traffic: new NodeTraffic() } as unknown as ClusterNode;
const start = (number = 1): AttemptStart => ({ node, route: 'v2', number, bodylessRead: true, abort: () => {}, streamed: undefined });
const answered: AttemptVerdict = { kind: 'answered', route: 'v2' };
const failed: AttemptVerdict = { kind: 'failed', code: 'NODE_RESET' };

describe('attempt observers', () => {
  it('node traffic counts an attempt in flight until it ends, and a failure only when the node failed it', () => {
    const a = nodeTraffic.begin(start());
    const b = nodeTraffic.begin(start());
    const c = nodeTraffic.begin(start());
    assert.equal(node.traffic.inflight, 3);
    a.end({ outcome: undefined, verdict: answered });
    b.end({ outcome: undefined, verdict: undefined }); // the client's doing
    c.end({ outcome: undefined, verdict: failed });
    c.end({ outcome: undefined, verdict: failed });
    assert.deepEqual([node.traffic.inflight, node.traffic.requests, node.traffic.failures], [0, 3, 1]);
  });

  it('passive health hears what an attempt says about its node, and nothing of what the client did', () => {
    const heard: AttemptVerdict[] = [];
    const observer = outlierReports({ record: (_n: ClusterNode, v: AttemptVerdict) => heard.push(v) } as never);
    observer.begin(start()).end({ outcome: undefined, verdict: undefined });
    observer.begin(start()).end({ outcome: undefined, verdict: failed });
    assert.deepEqual(heard, [failed]);
  });

  it('the retry budget counts retries in flight, not first attempts, once each', () => {
    const budget = new RetryBudget(0.2);
    const first = retriesInFlight(budget).begin(start(1));
    const retry = retriesInFlight(budget).begin(start(2));
    assert.equal(budget.retrying, 1);
    retry.end({ outcome: undefined, verdict: undefined });
    retry.end({ outcome: undefined, verdict: undefined });
    first.end({ outcome: undefined, verdict: undefined });
    assert.equal(budget.retrying, 0);
  });

  it("the answer watch counts only the node's time while a body streams: not the client's, and a node that stops taking the body is checked", () => {
    const clock = new FakeClock();
    const checked: string[] = [];
    const observer = answerWaits(new AnswerWatch(clock, (n) => checked.push(n.name)));
    const body = { taken: 1, waiting: true };
    const upload = observer.begin({ ...start(), bodylessRead: false, streamed: body });
    clock.advance(10_000); // the node waits for the client's bytes all along
    assert.deepEqual(checked, [], 'no check while the client is slow to send');
    body.waiting = false;
    for (let i = 0; i < 8; i++) {
      body.taken++; // the node takes a chunk every 500 ms: slow, but moving
      clock.advance(500);
    }
    assert.deepEqual(checked, [], 'no check while the node takes the body');
    clock.advance(1_500);
    assert.deepEqual(checked, [], 'under 2 s since the node last took a chunk');
    clock.advance(1_000);
    assert.deepEqual(checked, ['n1'], 'the node took nothing for 2 s (it stopped reading, or sits on the whole body)');
    upload.end({ outcome: undefined, verdict: undefined });

    const read = observer.begin(start());
    clock.advance(2_500);
    read.head!();
    assert.deepEqual(checked, ['n1', 'n1'], 'without a body the wait is the node\'s from the start');
  });
  it('when the node is taken out, a body-less read ends to go elsewhere; an upload, which cannot, is left to its node', () => {
    const clock = new FakeClock();
    const answers = new AnswerWatch(clock, () => {});
    const observer = answerWaits(answers);
    const ended: string[] = [];
    observer.begin({ ...start(), abort: () => ended.push('read') });
    // The node took nothing of it for 3 s: it may have stopped, or read slowly behind full socket buffers.
    observer.begin({ ...start(), bodylessRead: false, abort: () => ended.push('upload'), streamed: { taken: 3, waiting: false } });
    clock.advance(3_000);
    answers.nodeOut(node);
    assert.deepEqual(ended, ['read']);
  });
});
