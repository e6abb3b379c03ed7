import type { Metric, Registry } from 'prom-client';

/** One series of a histogram: plain numbers, so an observation is a bucket search and three additions. */
export class HistogramSeries {
  /** Per bucket (not cumulative); the last slot counts what is above every bound. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.#counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }

  /** The exposition's samples: cumulative `_bucket`s up to le="+Inf", then `_sum` and `_count`. */
  samples(name: string): Array<{ metricName: string; labels: Record<string, string | number>; value: number }> {
    const out = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.#counts[i]!;
      out.push({ metricName: `${name}_bucket`, labels: { le: this.bounds[i]!, ...this.labels }, value: acc });
    }
    out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...this.labels }, value: this.#count });
    out.push({ metricName: `${name}_sum`, labels: { ...this.labels }, value: this.#sum });
    out.push({ metricName: `${name}_count`, labels: { ...this.labels }, value: this.#count });
    return out;
  }
}

/**
 * A histogram whose series the request path holds directly (looked up once per label set, kept by
 * the caller), formatted by prom-client at scrape time. prom-client's own Histogram.observe()
 * builds a label hash string and a few objects on every call, a cost on every request and attempt.
 * The registry reads any registered object through get(), which answers in prom-client's
 * metric-object shape (the shape its typings give for get()).
 */
export class SeriesHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #series: HistogramSeries[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** A new series; the caller keeps it (one per label set). */
  series(labels: Readonly<Record<string, string>>): HistogramSeries {
    const s = new HistogramSeries(labels, this.buckets);
    this.#series.push(s);
    return s;
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: ReturnType<HistogramSeries['samples']> }> {
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#series.flatMap((s) => s.samples(this.name)),
    });
  }

  /** For Registry.resetMetrics(); the series stay, with their callers. */
  reset(): void {
    for (const s of this.#series) s.reset();
  }
}
