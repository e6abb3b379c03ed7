import { AggregatorRegistry } from 'prom-client';
import type { MetricsExposition } from '../admin/metrics.js';
import type { Metrics } from '../admin/metrics.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * The families a request worker counts itself, added up over the workers for /metrics. Everything
 * else (node state, flags, checks, ejections, panic, the pin store) is the control plane's alone,
 * and so are the per-node traffic families, whose counters it keeps as its workers' sum.
 */
const WORKER_FAMILIES: ReadonlySet<string> = new Set([
  'harbor_lb_requests_total',
  'harbor_lb_request_body_bytes_total',
  'harbor_lb_response_body_bytes_total',
  'harbor_lb_request_duration_seconds',
  'harbor_lb_upstream_duration_seconds',
  'harbor_lb_upstream_first_byte_seconds',
  'harbor_lb_retries_total',
  'harbor_lb_token_verdicts_total',
  'harbor_lb_client_rejections_total',
  'harbor_lb_sticky_lookups_total',
  'harbor_lb_sticky_store_errors_total',
  'harbor_lb_coalesced_requests_total',
  'harbor_lb_coalesced_bytes_total',
  'harbor_lb_cache_hits_total',
  'harbor_lb_cache_bytes_total',
]);

/** Whether a worker reports this family: its own request families, and the runtime's (added up as prom-client's cluster mode does). */
export function workerFamily(name: string): boolean {
  return WORKER_FAMILIES.has(name) || name.startsWith('process_') || name.startsWith('nodejs_');
}

/** A worker's share of /metrics, as prom-client's metric objects (structured-cloned to the control plane). */
export async function workerMetrics(metrics: Metrics): Promise<object[]> {
  const all = await metrics.registry.getMetricsAsJSON();
  return all.filter((m) => workerFamily(m.name));
}

/** /metrics with workers: the control plane's families and its workers' added up, series by series. */
export class AggregatedMetrics implements MetricsExposition {
  constructor(
    private readonly own: Metrics,
    private readonly pool: WorkerPool,
  ) {}

  get contentType(): string {
    return this.own.contentType;
  }

  async render(): Promise<string> {
    const [, theirs] = await Promise.all([this.pool.refresh(), this.pool.metrics()]);
    const own = await this.own.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...theirs]).metrics();
  }
}
