import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyRateWatch } from '../../../src/proxy/body-rate.js';
import { FakeClock } from '../../support/fake-clock.js';

/** A response going to a reader that takes `rate` bytes a second, in writes of `write` bytes; or none, with `unsent` unknown. */
function reader(rate: number, write: number, opts: { unsentKnown?: boolean } = {}) {
  let taken = 0;
  let cut = false;
  /** Bytes the client sent meanwhile (a pipelined request). */
  let sent = 0;
  const transfer = {
    read: () => sent,
    // Only whole writes show in the stream's count.
    written: () => Math.floor(taken / write) * write,
    unsent: () => (opts.unsentKnown === false ? undefined : write - (taken % write)),
    waitingOnClient: () => true,
    cut: () => (cut = true),
  };
  return { transfer, second: () => (taken += rate), send: (n: number) => (sent += n), cut: () => cut };
}

describe('minimum body rate (limits.minBodyRate)', () => {
  // Found by a probe: a reader at 1,500 B/s, above the 1,024 B/s minimum, was cut at 60 s: a
  // 64 KiB write takes it 44 s, and windows of 30 s between two saw nothing move.
  it('a reader just above the rate is never cut, though one write takes it longer than a window', () => {
    const clock = new FakeClock();
    const watch = new BodyRateWatch(1024, 30_000, clock);
    const r = reader(1500, 1024 * 1024);
    watch.watch(r.transfer);
    for (let s = 0; s < 600 && !r.cut(); s++) {
      r.second();
      clock.advance(1000);
    }
    assert.equal(r.cut(), false, 'ten minutes, inside one 1 MiB write');
    watch.stop();
  });

  it('a reader below the rate is cut after a window, and one that takes nothing too', () => {
    for (const rate of [900, 0]) {
      const clock = new FakeClock();
      const watch = new BodyRateWatch(1024, 30_000, clock);
      const r = reader(rate, 64 * 1024);
      watch.watch(r.transfer);
      let at = 0;
      for (; at < 120 && !r.cut(); at++) {
        r.second();
        clock.advance(1000);
      }
      assert.equal(at, 30, `cut after the first window at ${rate} B/s`);
      watch.stop();
    }
  });

  // Found in review: a read while a write was under way made the progress counted within it count again when it completed.
  it('counts a write once, though the client sends something while it is under way', () => {
    const clock = new FakeClock();
    const watch = new BodyRateWatch(1024, 30_000, clock);
    // 1,000 B/s is below the rate; 16 KiB writes complete every 16 s.
    const r = reader(1000, 16 * 1024);
    watch.watch(r.transfer);
    let at = 0;
    for (; at < 120 && !r.cut(); at++) {
      if (at === 10) r.send(10);
      r.second();
      clock.advance(1000);
    }
    assert.equal(at, 30, 'cut after the first window');
    watch.stop();
  });

  it('where the socket cannot tell what is unsent, whole writes count as before', () => {
    const clock = new FakeClock();
    const watch = new BodyRateWatch(1024, 30_000, clock);
    const r = reader(4096, 64 * 1024, { unsentKnown: false });
    watch.watch(r.transfer);
    for (let s = 0; s < 300 && !r.cut(); s++) {
      r.second();
      clock.advance(1000);
    }
    assert.equal(r.cut(), false, 'a 64 KiB write every 16 s');
    watch.stop();
  });
});
