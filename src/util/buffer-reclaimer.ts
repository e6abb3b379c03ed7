import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Told of the fresh buffers that die young: the body chunks node:http and undici allocate per
 * socket read (64 KiB each) that the proxy writes out and drops.
 *
 * Why: V8 counts such buffers as external memory and, once 64 MiB more of it is held than after
 * the last collection, starts a full mark-compact of the whole heap. The chunks make almost no
 * garbage inside the heap, so the cheap young-generation collection that would free them never
 * comes first: an upload paid a full collection per 64 MiB, about 40% of the process's CPU
 * (perf: concurrent marking and sweeping; 1.9 s of CPU per GiB pushed). A young-generation
 * collection every few MiB of such buffers frees them first (1.1 s per GiB, docs/benchmarks.md).
 */
export interface BufferReclaimer {
  /** `bytes` of buffers were allocated that live only until written out. */
  allocated(bytes: number): void;
}

/** Asks V8 for a young-generation collection once `everyBytes` of short-lived buffers were allocated. */
export class MinorGcReclaimer implements BufferReclaimer {
  #bytes = 0;
  /** Collections asked for, for tests and diagnostics. */
  collections = 0;

  constructor(
    private readonly collect: () => void,
    private readonly everyBytes = 16 * 1024 * 1024,
  ) {}

  allocated(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes < this.everyBytes) return;
    this.#bytes = 0;
    this.collections++;
    this.collect();
  }
}

/** For runtimes that give no way to ask for a collection: V8's own heuristics then decide. */
export const NO_RECLAIMER: BufferReclaimer = Object.freeze({ allocated: () => {} });

type GcFunction = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

/**
 * V8's `gc` function, taken without exposing it to the program: the flag is set only while a
 * fresh context is made (the way jest's leak detector does), so `globalThis.gc` stays undefined
 * unless node was started with --expose-gc.
 */
function minorCollector(): (() => void) | undefined {
  const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
  try {
    if (!exposed) setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as GcFunction | undefined;
    return typeof gc === 'function' ? () => gc({ type: 'minor' }) : undefined;
  } catch {
    return undefined;
  } finally {
    if (!exposed) setFlagsFromString('--no-expose-gc');
  }
}

export function createBufferReclaimer(): BufferReclaimer {
  const collect = minorCollector();
  return collect === undefined ? NO_RECLAIMER : new MinorGcReclaimer(collect);
}
