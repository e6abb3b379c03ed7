/**
 * At most one log line per key per interval. For events a client can trigger at will (a token
 * response it shaped): the counters still count every one, the log only samples them, and the
 * line that is written says how many were held back since the last one.
 */
export class LogRateLimit {
  readonly #last = new Map<string, { at: number; held: number }>();

  /** Keys must come from a small fixed set (event × node), never from request data: this map is not bounded. */
  constructor(private readonly intervalMs: number) {}

  /** The number of lines held back since the last one for `key` when a line may be written now; undefined when not. */
  take(key: string, now: number): number | undefined {
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.held++;
      return undefined;
    }
    this.#last.set(key, { at: now, held: 0 });
    return last?.held ?? 0;
  }
}
