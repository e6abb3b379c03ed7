/**
 * Caps retries cluster-wide: retries in flight may be at most `ratio` of requests in flight
 * (and always at least `floor`), so during an outage retries cannot double the load on the
 * nodes that are left. Counting concurrency, not rate, needs no clock.
 */
export class RetryBudget {
  active = 0;
  retrying = 0;

  constructor(
    /** Settable: a config reload may change it. */
    public ratio: number,
    private readonly floor = 3,
  ) {}

  canRetry(): boolean {
    return this.retrying < Math.max(this.floor, this.ratio * this.active);
  }
}
