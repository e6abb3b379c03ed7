import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLIENT_STALL_MS, StallClock } from '../../../src/proxy/stall-clock.js';

describe('StallClock: whether harbor-lb was waiting on the client long enough to make a failure the client\'s', () => {
  it('a short wait under way when the node fails is no stall (streaming waits between any two chunks)', () => {
    let now = 0;
    const clock = new StallClock(() => now);
    clock.begin();
    now = 5;
    assert.equal(clock.stalled(), false);
    now = CLIENT_STALL_MS - 1;
    assert.equal(clock.stalled(), false);
  });

  it('a wait under way that reached CLIENT_STALL_MS is a stall', () => {
    let now = 0;
    const clock = new StallClock(() => now);
    clock.begin();
    now = CLIENT_STALL_MS;
    assert.equal(clock.stalled(), true);
  });

  it('a long wait that ended still counts; many short ones do not add up; reset forgets them', () => {
    let now = 0;
    const clock = new StallClock(() => now);
    for (let i = 0; i < 10; i++) {
      clock.begin();
      now += CLIENT_STALL_MS / 2;
      clock.end();
    }
    assert.equal(clock.stalled(), false);
    clock.begin();
    now += CLIENT_STALL_MS;
    clock.end();
    assert.equal(clock.stalled(), true);
    clock.reset();
    assert.equal(clock.stalled(), false);
  });
});
