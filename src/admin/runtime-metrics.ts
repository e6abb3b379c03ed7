import { createRequire } from 'node:module';
import type { monitorEventLoopDelay, PerformanceObserver as Observer } from 'node:perf_hooks';
import { collectDefaultMetrics, type Registry } from 'prom-client';

/** The event-loop delay monitor (its type's name differs between @types/node lines). */
type LoopDelayMonitor = ReturnType<typeof monitorEventLoopDelay>;

// The CommonJS view of perf_hooks: the same object prom-client's own require() gets.
const perfHooks = createRequire(import.meta.url)('node:perf_hooks') as typeof import('node:perf_hooks');

/**
 * prom-client's process and Node.js metrics (CPU, memory, file descriptors, event loop lag, GC)
 * in `registry`; the returned function stops what they started.
 *
 * collectDefaultMetrics starts an event-loop-delay monitor (a libuv timer sampling every 10 ms)
 * and a GC PerformanceObserver, and gives no way to stop either (prom-client issues 494 and 500):
 * each app would leave both running after close(), one more per app a test process creates. So
 * the two perf_hooks factories are wrapped for the duration of the (synchronous) call, to keep
 * what prom-client creates; the wrappers are removed before anything else can run.
 */
export function startRuntimeMetrics(registry: Registry): () => void {
  const monitors: LoopDelayMonitor[] = [];
  const observers: Observer[] = [];
  const { monitorEventLoopDelay, PerformanceObserver } = perfHooks;
  perfHooks.monitorEventLoopDelay = (options) => {
    const h = monitorEventLoopDelay(options);
    monitors.push(h);
    return h;
  };
  perfHooks.PerformanceObserver = class extends PerformanceObserver {
    constructor(callback: ConstructorParameters<typeof PerformanceObserver>[0]) {
      super(callback);
      observers.push(this);
    }
  };
  try {
    collectDefaultMetrics({ register: registry });
  } finally {
    perfHooks.monitorEventLoopDelay = monitorEventLoopDelay;
    perfHooks.PerformanceObserver = PerformanceObserver;
  }
  return () => {
    for (const h of monitors) h.disable();
    for (const o of observers) o.disconnect();
  };
}
