/** What /metrics says was served without a node read: joins of another pull, cache hits, and their bytes. */
export interface Savings {
  joins: number;
  hits: number;
  bytes: number;
}

const FAMILIES: Record<string, keyof Savings | 'bytes'> = {
  harbor_lb_coalesced_requests_total: 'joins',
  harbor_lb_cache_hits_total: 'hits',
  harbor_lb_coalesced_bytes_total: 'bytes',
  harbor_lb_cache_bytes_total: 'bytes',
};

/** The savings counters in a Prometheus exposition (families without labels). */
export function savingsOf(exposition: string): Savings {
  const s: Savings = { joins: 0, hits: 0, bytes: 0 };
  for (const line of exposition.split('\n')) {
    const m = /^(harbor_lb_[a-z_]+) ([0-9.e+]+)$/.exec(line);
    const key = m === null ? undefined : FAMILIES[m[1]!];
    if (key !== undefined) s[key] += Number(m![2]);
  }
  return s;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/**
 * The demo's banner line for overlapping pulls: every few seconds, if pulls were served without a
 * node reading the blob (joined another client's pull, or from the blob cache), one line says how
 * many and how many bytes the nodes were spared, then and since start.
 */
export class SavingsReport {
  #last: Savings = { joins: 0, hits: 0, bytes: 0 };
  #timer: NodeJS.Timeout | undefined;

  constructor(
    /** The admin listener's /metrics text. */
    private readonly read: () => Promise<string>,
    private readonly write: (line: string) => void,
  ) {}

  start(everyMs: number): void {
    this.#timer = setInterval(() => void this.tick().catch(() => {}), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Reads the counters once and writes a line if they moved since the last time. */
  async tick(): Promise<void> {
    const now = savingsOf(await this.read());
    const joins = now.joins - this.#last.joins;
    const hits = now.hits - this.#last.hits;
    const bytes = now.bytes - this.#last.bytes;
    this.#last = now;
    if (bytes <= 0) return;
    const how = [hits > 0 ? `${hits} from the blob cache` : '', joins > 0 ? `${joins} joined another client's pull` : ''].filter(Boolean).join(', ');
    this.write(`harbor-lb saved the nodes ${mib(bytes)} of blob reads just now (${how}); ${mib(now.bytes)} since start`);
  }
}
