/** One measurement of one contender, as written to bench/results/<timestamp>.jsonl. */
export interface Sample {
  run: string;
  round: number;
  /** Position of this contender within the round's run of this metric (0 = first). */
  position: number;
  metric: Metric;
  variant: string;
  contender: string;
  ok: boolean;
  failure?: string;
  /** Small requests (M1, M4, M5): wrk's figures. */
  requests?: number;
  errors?: number;
  reqPerS?: number;
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerReq?: number;
  /** Blobs (M2, M3). */
  streams?: number;
  bytes?: number;
  wallS?: number;
  mibPerS?: number;
  cpuSPerGiB?: number;
  /** Minor page faults of the contender's processes per GiB moved. */
  faultsPerGiB?: number;
  /** The contender's processes: CPU used during the measurement, resident memory before it and at its peak. */
  cpuS?: number;
  rssBeforeMiB?: number;
  rssPeakMiB?: number;
  loadAvg1?: number;
}

export type Metric = 'M1' | 'M2' | 'M3' | 'M4' | 'M5' | 'M6' | 'hey';

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Summary {
  n: number;
  failed: number;
  median: Partial<Record<NumericField, number>>;
  min: Partial<Record<NumericField, number>>;
  max: Partial<Record<NumericField, number>>;
}

export type NumericField = 'reqPerS' | 'p50Ms' | 'p99Ms' | 'cpuUsPerReq' | 'mibPerS' | 'cpuSPerGiB' | 'faultsPerGiB' | 'rssBeforeMiB' | 'rssPeakMiB';
const FIELDS: NumericField[] = ['reqPerS', 'p50Ms', 'p99Ms', 'cpuUsPerReq', 'mibPerS', 'cpuSPerGiB', 'faultsPerGiB', 'rssBeforeMiB', 'rssPeakMiB'];

/** Medians (and ranges) over the rounds of the successful samples of one metric, variant and contender. */
export function summarize(samples: readonly Sample[], metric: Metric, variant: string, contender: string): Summary | undefined {
  const mine = samples.filter((s) => s.metric === metric && s.variant === variant && s.contender === contender);
  if (mine.length === 0) return undefined;
  const good = mine.filter((s) => s.ok);
  const out: Summary = { n: good.length, failed: mine.length - good.length, median: {}, min: {}, max: {} };
  for (const f of FIELDS) {
    const xs = good.map((s) => s[f]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    if (xs.length === 0) continue;
    out.median[f] = median(xs);
    out.min[f] = Math.min(...xs);
    out.max[f] = Math.max(...xs);
  }
  return out;
}
