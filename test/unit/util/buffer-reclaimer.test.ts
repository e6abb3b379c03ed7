import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { it } from 'node:test';
import { createBufferReclaimer, MinorGcReclaimer } from '../../../src/util/buffer-reclaimer.js';

const MiB = 1024 * 1024;

it('asks for one collection per threshold of short-lived buffers, however they are split', () => {
  let collected = 0;
  const reclaimer = new MinorGcReclaimer(() => collected++, 16 * MiB);
  for (let i = 0; i < 255; i++) reclaimer.allocated(64 * 1024);
  assert.equal(collected, 0, '16 MiB less one chunk: nothing yet');
  reclaimer.allocated(64 * 1024);
  assert.equal(collected, 1);
  reclaimer.allocated(40 * MiB);
  assert.equal(collected, 2, 'one large report is one collection, and the count starts again');
  reclaimer.allocated(15 * MiB);
  assert.equal(collected, 2);
  assert.equal(reclaimer.collections, 2);
});

it('does not count buffers freed once written: only those left to a collection bring one', () => {
  let collected = 0;
  const reclaimer = new MinorGcReclaimer(() => collected++, 4 * MiB);
  for (let i = 0; i < 1024; i++) {
    reclaimer.released(64 * 1024, reclaimer.allocated(64 * 1024));
  }
  assert.equal(collected, 0, '64 MiB of upload pieces, each freed once written: no collection');
  const epoch = reclaimer.allocated(3 * MiB);
  reclaimer.released(8 * MiB, epoch);
  reclaimer.allocated(3 * MiB);
  assert.equal(collected, 0, 'never below nothing: what is left counts from zero');
  reclaimer.allocated(1 * MiB);
  assert.equal(collected, 1);
});

it('a piece counted before the count started again does not lower the new count when it is freed', () => {
  let collected = 0;
  const reclaimer = new MinorGcReclaimer(() => collected++, 4 * MiB);
  // Pieces counted and still being written when V8 collects on its own.
  const epochs = Array.from({ length: 63 }, () => reclaimer.allocated(64 * 1024));
  reclaimer.youngCollected();
  // Buffers only a collection frees, while the earlier pieces are written and freed.
  for (let i = 0; i < 63; i++) reclaimer.allocated(64 * 1024);
  for (const e of epochs) reclaimer.released(64 * 1024, e);
  reclaimer.allocated(128 * 1024);
  assert.equal(collected, 1, '4 MiB left to a collection since the last one: one is asked for');
  // The piece that brought a collection is not in the count that starts after it.
  const last = reclaimer.allocated(4 * MiB);
  assert.equal(collected, 2);
  reclaimer.allocated(3 * MiB);
  reclaimer.released(4 * MiB, last);
  reclaimer.allocated(1 * MiB);
  assert.equal(collected, 3);
});

/** The kinds of the collections V8 reports while `work` runs. */
async function collectionsDuring(work: () => void): Promise<number[]> {
  const kinds: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) kinds.push(e.detail?.kind ?? -1);
  });
  observer.observe({ entryTypes: ['gc'] });
  work();
  // Entries are delivered after the turn that made them.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  return kinds;
}

/** Young-generation collections: the Scavenger's, or Minor Mark-Sweep's under --minor-ms. */
const YOUNG = [constants.NODE_PERFORMANCE_GC_MINOR, (constants as unknown as Record<string, number>).NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP];

it("runs a young-generation collection of this process's heap, without exposing gc to the program", async (t) => {
  const gcBefore = (globalThis as { gc?: unknown }).gc;
  const reclaimer = createBufferReclaimer();
  t.after(() => reclaimer.close());
  assert.ok(reclaimer instanceof MinorGcReclaimer, 'V8 gave its collector');
  assert.equal((globalThis as { gc?: unknown }).gc, gcBefore, 'globalThis.gc stays as node was started');
  const kinds = await collectionsDuring(() => reclaimer.allocated(16 * MiB));
  assert.ok(kinds.some((k) => YOUNG.includes(k)), `a young-generation collection ran (kinds seen: ${kinds.join(', ')})`);
  assert.equal(reclaimer.collections, 1);
});

it('counts V8 collecting the young generation on its own as a collection: none is asked for then', async (t) => {
  let collected = 0;
  const reclaimer = new MinorGcReclaimer(() => collected++, 16 * MiB);
  reclaimer.allocated(10 * MiB);
  reclaimer.youngCollected();
  reclaimer.allocated(10 * MiB);
  assert.equal(collected, 0, '10 MiB since the last collection');
  reclaimer.allocated(6 * MiB);
  assert.equal(collected, 1);

  // The same through V8 itself: garbage enough to fill the young generation makes V8 collect it.
  const watching = new MinorGcReclaimer(() => collected++, 16 * MiB).watchYoungCollections();
  t.after(() => watching.close());
  watching.allocated(10 * MiB);
  let garbage: unknown[] = [];
  for (let i = 0; i < 2_000_000; i++) garbage.push({ i });
  garbage = [];
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  watching.allocated(10 * MiB);
  assert.equal(watching.collections, 0, "V8's own collection freed what came before");
});
