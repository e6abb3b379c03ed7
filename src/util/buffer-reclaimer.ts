import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { v8Collector } from './v8-collector.js';

/**
 * Told of the fresh buffers that die young: the upload chunks node:http copies each socket read
 * into (up to 64 KiB each), and the fresh read buffers undici hands on views of, which the proxy
 * writes out and drops. An upload chunk is then freed once the node's socket wrote it
 * (free-once-written.ts) and reported released: only what is left to a collection counts.
 *
 * Why: V8 counts such buffers as external memory and, once 64 MiB more of it is held than after
 * the last collection, starts a full mark-compact of the whole heap. The chunks make almost no
 * garbage inside the heap, so the cheap young-generation collection that would free them does not
 * come first: an upload paid a full collection per 64 MiB. One process, 4 streams of 64 MiB PUTs
 * to nginx: 1.90 s of CPU per GiB, 23-27 full collections per GiB; with a young-generation
 * collection every 16 MiB of such buffers, 0.99 s and 1 (docs/benchmarks.md). Every 4 MiB: with
 * 8 or more, V8 still began marking the old generation now and then, and a collection asked for
 * then finished it as a full one (2 workers, one 1 GiB stream: 4-10 full collections in 2 of 5
 * runs at 8 MiB, 20-37 at 32, none beyond start-up's 3-4 in 10 of 10 at 4 or 2), and fewer
 * buffers between two collections is less memory kept by malloc, at the same CPU.
 */
export interface BufferReclaimer {
  /**
   * `bytes` of buffers were allocated that live only until written out. Returns the count's epoch
   * (it changes whenever the count starts again), for `released`.
   */
  allocated(bytes: number): number;
  /**
   * `bytes` of those, counted in `epoch`, were freed once written (util/free-once-written.ts): no
   * collection is needed for them. Those counted before the count last started again are not in it.
   */
  released(bytes: number, epoch: number): void;
  close(): void;
}

/** The kinds of a young-generation collection in a 'gc' performance entry (Scavenger, or Minor Mark-Sweep). */
const YOUNG_KINDS = new Set<number>([constants.NODE_PERFORMANCE_GC_MINOR, (constants as unknown as Record<string, number>).NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP ?? constants.NODE_PERFORMANCE_GC_MINOR]);

/** Asks V8 for a young-generation collection once `everyBytes` of short-lived buffers were allocated since the last one. */
export class MinorGcReclaimer implements BufferReclaimer {
  #bytes = 0;
  /** Changes each time the count starts again (a collection, asked for or V8's own). */
  #epoch = 0;
  #observer: PerformanceObserver | undefined;
  /** Collections asked for, for tests and diagnostics. */
  collections = 0;

  constructor(
    private readonly collect: () => void,
    private readonly everyBytes = 4 * 1024 * 1024,
  ) {}

  allocated(bytes: number): number {
    this.#bytes += bytes;
    if (this.#bytes < this.everyBytes) return this.#epoch;
    this.#bytes = 0;
    this.collections++;
    this.collect();
    // This piece was counted towards the collection just asked for, not in the new count: its release must not lower that.
    return this.#epoch++;
  }

  released(bytes: number, epoch: number): void {
    if (epoch !== this.#epoch) return;
    this.#bytes = Math.max(0, this.#bytes - bytes);
  }

  /**
   * V8 collected the young generation on its own, which frees the same buffers: the count starts
   * again. Under mixed load (small requests alongside uploads) V8's own collections come often, so
   * few are asked for: each one asked for also promotes what requests in flight then hold.
   */
  youngCollected(): void {
    this.#bytes = 0;
    this.#epoch++;
  }

  /** Listens for V8's own young-generation collections (those not asked for here). */
  watchYoungCollections(): this {
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number; flags?: number } }>) {
        const forced = ((e.detail?.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0;
        if (!forced && YOUNG_KINDS.has(e.detail?.kind ?? -1)) this.youngCollected();
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    return this;
  }

  close(): void {
    this.#observer?.disconnect();
    this.#observer = undefined;
  }
}

/** For runtimes that give no way to ask for a collection: V8's own heuristics then decide. */
export const NO_RECLAIMER: BufferReclaimer = Object.freeze({ allocated: () => 0, released: () => {}, close: () => {} });

export function createBufferReclaimer(): BufferReclaimer {
  const gc = v8Collector();
  return gc === undefined ? NO_RECLAIMER : new MinorGcReclaimer(() => gc({ type: 'minor' })).watchYoungCollections();
}
