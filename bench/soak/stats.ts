/** Small statistics helpers for the soak: latencies per route, counters by reason. */

/** Nearest-rank percentile of an ascending list (p in 0..100); undefined when the list is empty. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface LatencySummary {
  n: number;
  p50?: number;
  p99?: number;
  max?: number;
}

export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 10) / 10);
  return { n: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1]) };
}

/** The routes the soak reports on, named after what a client does. */
export const ROUTES = ['token', 'v2 pull', 'upload', 'ui'] as const;
export type SoakRoute = (typeof ROUTES)[number];

/** Request durations per route: the whole run, and the part since the last sample. */
export class LatencyRecorder {
  readonly #all = new Map<SoakRoute, number[]>(ROUTES.map((r) => [r, []]));
  #interval = new Map<SoakRoute, number[]>(ROUTES.map((r) => [r, []]));

  record(route: SoakRoute, ms: number): void {
    this.#all.get(route)!.push(ms);
    this.#interval.get(route)!.push(ms);
  }

  /** Summaries of the requests since the previous call, and a fresh interval. */
  takeInterval(): Record<SoakRoute, LatencySummary> {
    const out = Object.fromEntries(ROUTES.map((r) => [r, summarize(this.#interval.get(r)!)])) as Record<SoakRoute, LatencySummary>;
    this.#interval = new Map(ROUTES.map((r) => [r, []]));
    return out;
  }

  total(): Record<SoakRoute, LatencySummary> {
    return Object.fromEntries(ROUTES.map((r) => [r, summarize(this.#all.get(r)!)])) as Record<SoakRoute, LatencySummary>;
  }
}

/** Counts by key, in first-seen order. */
export class Tally {
  readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  get total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }
  toObject(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
  }
}

/** A small seeded PRNG (mulberry32), so a run's mix of operations can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
