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

/**
 * The reader watched at 1,024 B/s over 30 s windows, a second at a time (`each` runs before each
 * second) until it is cut or `seconds` pass: the seconds it ran, and whether it was cut.
 */
function watchFor(r: ReturnType<typeof reader>, seconds: number, each: (second: number) => void = () => {}): { at: number; cut: boolean } {
  const clock = new FakeClock();
  const watch = new BodyRateWatch(1024, 30_000, clock);
  watch.watch(r.transfer);
  let at = 0;
  for (; at < seconds && !r.cut(); at++) {
    each(at);
    r.second();
    clock.advance(1000);
  }
  watch.stop();
  return { at, cut: r.cut() };
}

describe('minimum body rate (limits.minBodyRate)', () => {
  // Found by a probe: a reader at 1,500 B/s, above the 1,024 B/s minimum, was cut at 60 s: a
  // 64 KiB write takes it 44 s, and windows of 30 s between two saw nothing move.
  it('a reader just above the rate is never cut, though one write takes it longer than a window', () => {
    assert.equal(watchFor(reader(1500, 1024 * 1024), 600).cut, false, 'ten minutes, inside one 1 MiB write');
  });

  it('a reader below the rate is cut after a window, and one that takes nothing too', () => {
    for (const rate of [900, 0]) assert.equal(watchFor(reader(rate, 64 * 1024), 120).at, 30, `cut after the first window at ${rate} B/s`);
  });

  // Found in review: a read while a write was under way made the progress counted within it count again when it completed.
  it('counts a write once, though the client sends something while it is under way', () => {
    // 1,000 B/s is below the rate; 16 KiB writes complete every 16 s.
    const r = reader(1000, 16 * 1024);
    assert.equal(watchFor(r, 120, (at) => at === 10 && r.send(10)).at, 30, 'cut after the first window');
  });

  it('where the socket cannot tell what is unsent, whole writes count as before', () => {
    assert.equal(watchFor(reader(4096, 64 * 1024, { unsentKnown: false }), 300).cut, false, 'a 64 KiB write every 16 s');
  });
});
