import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecheckTrigger } from '../../../src/util/recheck-trigger.js';
import { FakeClock } from '../../support/fake-clock.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('RecheckTrigger', () => {
  it('runs at once, then folds any number of requests into one run per spacing', async () => {
    const clock = new FakeClock();
    const runs: number[] = [];
    const trigger = new RecheckTrigger<string>(clock, 1000, async () => void runs.push(clock.now()));
    const t0 = clock.now();
    trigger.request('n1');
    await settle();
    assert.deepEqual(runs, [t0], 'the first request runs at once');
    for (let i = 0; i < 1000; i++) trigger.request('n1');
    await settle();
    assert.equal(runs.length, 1, 'a flood within the spacing runs nothing more yet');
    clock.advance(999);
    await settle();
    assert.equal(runs.length, 1);
    clock.advance(1);
    await settle();
    assert.deepEqual(runs, [t0, t0 + 1000], 'one owed run at the end of the spacing');
    clock.advance(5000);
    await settle();
    assert.equal(runs.length, 2, 'nothing owed, nothing runs');
  });

  it('never runs twice at a time for one key; keys are independent', async () => {
    const clock = new FakeClock();
    let running = 0;
    let most = 0;
    const release: Array<() => void> = [];
    const seen: string[] = [];
    const trigger = new RecheckTrigger<string>(clock, 10, (key) => {
      seen.push(key);
      running++;
      most = Math.max(most, running);
      return new Promise<void>((resolve) => release.push(() => (running--, resolve())));
    });
    trigger.request('a');
    trigger.request('b');
    clock.advance(50);
    trigger.request('a');
    await settle();
    assert.deepEqual(seen, ['a', 'b'], 'a is still running: its second request waits');
    assert.ok(trigger.pending('a'));
    release.shift()!();
    await settle();
    await settle();
    assert.deepEqual(seen, ['a', 'b'], 'owed run waits for the spacing counted from the start of the last');
    clock.advance(1);
    await settle();
    assert.deepEqual(seen, ['a', 'b', 'a']);
    assert.equal(most, 2, 'one per key at a time');
    release.forEach((r) => r());
  });

  it('forget and stop: nothing owed runs afterwards, and a throwing action does not stop later runs', async () => {
    const clock = new FakeClock();
    const runs: string[] = [];
    const trigger = new RecheckTrigger<string>(clock, 100, async (k) => {
      runs.push(k);
      throw new Error('probe failed');
    });
    trigger.request('a');
    trigger.request('b');
    await settle();
    trigger.request('a');
    trigger.request('b');
    trigger.forget('a');
    clock.advance(100);
    await settle();
    assert.deepEqual(runs, ['a', 'b', 'b']);
    trigger.request('b');
    trigger.stop();
    clock.advance(1000);
    await settle();
    assert.deepEqual(runs, ['a', 'b', 'b']);
    assert.equal(clock.pending, 0, 'no timer left behind');
  });
});
