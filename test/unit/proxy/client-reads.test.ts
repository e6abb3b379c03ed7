import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LARGE_READ_SIZE, LARGE_READERS, LargeReadPlaces, READ_SIZE, type ReadState } from '../../../src/proxy/client-reads.js';

const fresh = (): ReadState => ({ want: true, large: false });

it(`gives large reads to at most ${LARGE_READERS} connections at once, each once a 64 KiB read came full while it asked`, () => {
  const places = new LargeReadPlaces();
  const conns = Array.from({ length: LARGE_READERS + 2 }, fresh);
  // A short read, or a full one without asking: no place.
  assert.equal(places.afterRead(conns[0]!, READ_SIZE - 1, READ_SIZE), false);
  const idle = { want: false, large: false };
  assert.equal(places.afterRead(idle, READ_SIZE, READ_SIZE), false);
  for (const c of conns) places.afterRead(c, READ_SIZE, READ_SIZE);
  assert.equal(places.taken, LARGE_READERS);
  assert.deepEqual(conns.map((c) => c.large), conns.map((_, i) => i < LARGE_READERS));
  // Full large reads keep it; a short one gives it back, and the next waiting connection's full read takes it.
  assert.equal(places.afterRead(conns[0]!, LARGE_READ_SIZE, LARGE_READ_SIZE), true);
  assert.equal(places.afterRead(conns[0]!, READ_SIZE - 1, LARGE_READ_SIZE), false);
  assert.equal(places.afterRead(conns[LARGE_READERS]!, READ_SIZE, READ_SIZE), true);
  // Asking no more (the body ended) gives it back at the next read; a close (leave) at once, once.
  conns[1]!.want = false;
  assert.equal(places.afterRead(conns[1]!, 100, LARGE_READ_SIZE), false);
  places.leave(conns[2]!);
  places.leave(conns[2]!);
  assert.equal(places.taken, LARGE_READERS - 2);
});
