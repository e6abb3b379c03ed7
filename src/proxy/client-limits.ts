/**
 * What one client may hold at once: connections per peer address, requests in flight per client.
 * Counts live only while something is held, so the maps never outgrow the clients connected now.
 */
export class ClientLimits {
  readonly #connections = new Map<string, number>();
  readonly #requests = new Map<string, number>();
  /** client|node|pool → requests the client has on that node's pool now. */
  readonly #onNode = new Map<string, number>();

  constructor(
    private readonly maxConnections: number,
    private readonly maxRequests: number,
    /** What one client may hold of one node's pools: [requests without a streamed body, streamed uploads]. */
    private readonly nodeShare: { fast: number; upload: number } = { fast: 0, upload: 0 },
  ) {}

  /** Takes a slot of a node's pool for `ip`; false (nothing taken) when the client holds its share of it already. */
  startOnNode(ip: string, node: string, upload: boolean): boolean {
    return take(this.#onNode, `${ip}|${node}|${upload ? 'u' : 'f'}`, upload ? this.nodeShare.upload : this.nodeShare.fast);
  }

  endOnNode(ip: string, node: string, upload: boolean): void {
    give(this.#onNode, `${ip}|${node}|${upload ? 'u' : 'f'}`);
  }

  /** Takes a connection slot for `ip`; false (nothing taken) when the client holds its limit already. */
  openConnection(ip: string): boolean {
    return take(this.#connections, ip, this.maxConnections);
  }

  closeConnection(ip: string): void {
    give(this.#connections, ip);
  }

  /** Takes a request slot for `ip`; false (nothing taken) when the client has its limit in flight. */
  startRequest(ip: string): boolean {
    return take(this.#requests, ip, this.maxRequests);
  }

  endRequest(ip: string): void {
    give(this.#requests, ip);
  }
}

function take(counts: Map<string, number>, key: string, max: number): boolean {
  if (max === 0) return true;
  const n = counts.get(key) ?? 0;
  if (n >= max) return false;
  counts.set(key, n + 1);
  return true;
}

function give(counts: Map<string, number>, key: string): void {
  const n = counts.get(key);
  if (n === undefined) return;
  if (n <= 1) counts.delete(key);
  else counts.set(key, n - 1);
}
