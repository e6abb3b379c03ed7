import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's `gc` function: a collection of the kind asked for, now or as a task. */
export type V8Collect = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

/**
 * V8's collector, taken without exposing it to the program: the flag is set only while a fresh
 * context is made (the way jest's leak detector does), so `globalThis.gc` stays as node was
 * started (undefined unless with --expose-gc). Undefined where the runtime refuses.
 */
export function v8Collector(): V8Collect | undefined {
  const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
  try {
    if (!exposed) setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as V8Collect) : undefined;
  } catch {
    return undefined;
  } finally {
    if (!exposed) setFlagsFromString('--no-expose-gc');
  }
}
