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

it("runs a young-generation collection of this process's heap, without exposing gc to the program", async () => {
  const reclaimer = createBufferReclaimer();
  assert.ok(reclaimer instanceof MinorGcReclaimer, 'V8 gave its collector');
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'globalThis.gc stays as node was started');
  const kinds = await collectionsDuring(() => reclaimer.allocated(16 * MiB));
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `a minor collection ran (kinds seen: ${kinds.join(', ')})`);
  assert.ok(!kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'and no full one');
});
