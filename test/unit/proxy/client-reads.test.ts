import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LARGE_READERS, LargeReadPlaces, type ReadState } from '../../../src/proxy/client-reads.js';
import { LARGE_READ_SIZE, READ_SIZE } from '../../../src/util/read-sizes.js';

/** A connection with `left` bytes of a body it may read large still to come. */
const wanting = (left = 10 * LARGE_READ_SIZE): ReadState => ({ read: 0, end: left, large: false });

/** Counts a read of `n` bytes into a buffer of `size`, as ClientReads does, and asks the places. */
const read = (places: LargeReadPlaces, s: ReadState, n: number, size = READ_SIZE): boolean => {
  s.read += n;
  return places.afterRead(s, n, size);
};

it(`gives large reads to at most ${LARGE_READERS} connections at once, each once a 64 KiB read came full with at least 64 KiB of its body to come`, () => {
  const places = new LargeReadPlaces();
  const conns = Array.from({ length: LARGE_READERS + 2 }, () => wanting());
  // A short read, a full one without a body to read large, or with less than 64 KiB of it left: no place.
  assert.equal(read(places, conns[0]!, READ_SIZE - 1), false);
  assert.equal(read(places, { read: 0, end: 0, large: false }, READ_SIZE), false);
  assert.equal(read(places, wanting(2 * READ_SIZE - 1), READ_SIZE), false);
  for (const c of conns) read(places, c, READ_SIZE);
  assert.equal(places.taken, LARGE_READERS);
  assert.deepEqual(conns.map((c) => c.large), conns.map((_, i) => i < LARGE_READERS));
  // Full large reads keep it; a short one gives it back, and the next waiting connection's full read takes it.
  assert.equal(read(places, conns[0]!, LARGE_READ_SIZE, LARGE_READ_SIZE), true);
  assert.equal(read(places, conns[0]!, READ_SIZE - 1, LARGE_READ_SIZE), false);
  assert.equal(read(places, conns[LARGE_READERS]!, READ_SIZE), true);
  // Less than 64 KiB of the body left: given back at that read; a close (leave) at once, once.
  const near = conns[1]!;
  near.end = near.read + LARGE_READ_SIZE + 100;
  assert.equal(read(places, near, LARGE_READ_SIZE, LARGE_READ_SIZE), false);
  places.leave(conns[2]!);
  places.leave(conns[2]!);
  assert.equal(places.taken, LARGE_READERS - 2);
});

it("hears a body's end only from the body that set it: a pipelined request's body is not cut short by the one before", () => {
  const places = new LargeReadPlaces();
  const s: ReadState = { read: 0, end: 0, large: false };
  const first = {};
  const second = {};
  places.want(s, 4 * LARGE_READ_SIZE, first);
  read(places, s, READ_SIZE);
  assert.equal(s.large, true);
  // The first body ended; the next began; the first's exchange then lets its body go (0, late).
  places.want(s, 0, first);
  places.want(s, 3 * LARGE_READ_SIZE, second);
  places.want(s, 0, first);
  assert.equal(s.end, s.read + 3 * LARGE_READ_SIZE);
  assert.equal(read(places, s, READ_SIZE), true);
  // Its own 0, or less than 64 KiB left, gives the place back at once.
  places.want(s, READ_SIZE - 1, second);
  assert.equal(s.large, false);
  places.want(s, 0, second);
  assert.equal(s.end, 0);
  assert.equal(places.taken, 0);
});
