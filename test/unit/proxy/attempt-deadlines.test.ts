import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptDeadlines } from '../../../src/proxy/attempt-deadlines.js';
import { FakeClock } from '../../support/fake-clock.js';

const setup = () => {
  const clock = new FakeClock(0);
  const deadlines = new AttemptDeadlines(1_000, clock);
  const aborted: string[] = [];
  const watch = (headersMs: number) => deadlines.watch(headersMs, (err) => aborted.push((err as Error & { code: string }).code));
  return { clock, aborted, watch };
};

describe("the node's time limits for requests without a body", () => {
  it('a head that does not come within headersTimeout aborts with undici\'s headers timeout, no sooner', () => {
    const { clock, aborted, watch } = setup();
    watch(500);
    clock.advance(400);
    assert.deepEqual(aborted, []);
    clock.advance(200);
    assert.deepEqual(aborted, ['UND_ERR_HEADERS_TIMEOUT']);
    clock.advance(5_000);
    assert.deepEqual(aborted, ['UND_ERR_HEADERS_TIMEOUT'], 'once');
  });

  it('after the head, a gap of idleTimeout between chunks aborts with the body timeout; chunks keep it going', () => {
    const { clock, aborted, watch } = setup();
    const d = watch(500);
    clock.advance(100);
    d.headed();
    for (let i = 0; i < 20; i++) {
      clock.advance(300);
      d.data();
    }
    assert.deepEqual(aborted, [], 'six seconds of chunks 300 ms apart');
    clock.advance(1_200);
    assert.deepEqual(aborted, ['UND_ERR_BODY_TIMEOUT']);
  });

  it("time the client makes harbor-lb wait (the node paused for it) is not the node's gap", () => {
    const { clock, aborted, watch } = setup();
    const d = watch(500);
    d.headed();
    d.paused = true;
    clock.advance(10_000);
    assert.deepEqual(aborted, []);
    d.paused = false;
    clock.advance(1_200);
    assert.deepEqual(aborted, ['UND_ERR_BODY_TIMEOUT']);
  });

  it('an attempt that ended is no longer watched', () => {
    const { clock, aborted, watch } = setup();
    watch(500).done();
    clock.advance(5_000);
    assert.deepEqual(aborted, []);
  });
});
