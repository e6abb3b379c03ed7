import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PIECES_PER_WINDOW, PIECES_WINDOW_MS, TINY_AVERAGE, TinyPieceLimit } from '../../../src/proxy/tiny-pieces.js';
import { FakeClock } from '../../support/fake-clock.js';

it('a body of 1-byte pieces is over once more than 4,096 come within a second, not before', () => {
  const pieces = new TinyPieceLimit(new FakeClock()).start();
  for (let i = 0; i < PIECES_PER_WINDOW; i++) assert.equal(pieces.took(1), false);
  assert.equal(pieces.took(1), true);
});

it('is never over for pieces that average 1 KiB or more, however many, short reads among them included', () => {
  const pieces = new TinyPieceLimit(new FakeClock()).start();
  for (let i = 0; i < PIECES_PER_WINDOW * 4; i++) assert.equal(pieces.took(i % 10 === 0 ? 100 : 16 * 1024), false);
  const even = new TinyPieceLimit(new FakeClock()).start();
  for (let i = 0; i < PIECES_PER_WINDOW * 2; i++) assert.equal(even.took(TINY_AVERAGE), false);
});

it('is never over for small pieces that come slower than 4,096 a second (a slow producer)', () => {
  const clock = new FakeClock();
  const pieces = new TinyPieceLimit(clock).start();
  for (let second = 0; second < 5; second++) {
    for (let i = 0; i < PIECES_PER_WINDOW - 1; i++) assert.equal(pieces.took(1), false);
    clock.advance(PIECES_WINDOW_MS);
  }
});

it('starts a new window when the clock is stepped back', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
  const pieces = new TinyPieceLimit(clock).start();
  for (let i = 0; i < PIECES_PER_WINDOW; i++) pieces.took(1);
  const at = clock.now();
  (clock as unknown as { now: () => number }).now = () => at - 3_600_000;
  assert.equal(pieces.took(1), false);
});
