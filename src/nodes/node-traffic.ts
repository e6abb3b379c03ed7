/**
 * A node's traffic counters, read by balancing, status and metrics, changed only through
 * `begin()` and the end it returns (Caddy's countRequest): no reader can leave one off by one.
 */
export class NodeTraffic {
  #inflight = 0;
  #requests = 0;
  #failures = 0;

  /** Attempts on the node now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Attempts sent to the node since it joined. */
  get requests(): number {
    return this.#requests;
  }

  /** Attempts the node failed (its own failures, not the clients'). */
  get failures(): number {
    return this.#failures;
  }

  /**
   * The control plane's copy of a node, which sends nothing itself: its counters are its request
   * workers' added up (workers/worker-pool.ts), never changed by begin().
   */
  setTotals(inflight: number, requests: number, failures: number): void {
    this.#inflight = inflight;
    this.#requests = requests;
    this.#failures = failures;
  }

  /** An attempt begins; the function returned ends it (once; `failed`: the node failed it). */
  begin(): (failed: boolean) => void {
    this.#inflight++;
    this.#requests++;
    let ended = false;
    return (failed) => {
      if (ended) return;
      ended = true;
      this.#inflight--;
      if (failed) this.#failures++;
    };
  }
}
