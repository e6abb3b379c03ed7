import { LiveCounts } from '../util/live-counts.js';

/**
 * What each client holds of the proxy now: connections per peer address and requests in flight
 * per client. Counts live only while something is held (but for one at zero, see LiveCounts), so
 * the maps never outgrow the clients connected now. Nothing here refuses anyone: under pressure,
 * the connection guard closes idle connections of the heaviest address, and node admission puts
 * busy clients behind the others.
 */
export class ClientLimits {
  readonly #connections = new Map<string, number>();
  /** Requests in flight per client (a LiveCounts: one client alone adds and removes no entry per request). */
  readonly #requests = new LiveCounts();
  #openConnections = 0;

  constructor(
    /** limits.requestsPerClient: above this many in flight a client is busy (0: never). */
    private readonly maxRequests: number,
  ) {}

  /** A connection from `ip` opened; returns how many it has open now. */
  openConnection(ip: string): number {
    this.#openConnections++;
    const n = (this.#connections.get(ip) ?? 0) + 1;
    this.#connections.set(ip, n);
    return n;
  }

  closeConnection(ip: string): void {
    this.#openConnections--;
    give(this.#connections, ip);
  }

  /** Connections open now from every address counted (trusted proxies' aside). */
  get openConnections(): number {
    return this.#openConnections;
  }

  connectionsOf(ip: string): number {
    return this.#connections.get(ip) ?? 0;
  }

  /** The addresses holding the most connections now, most first. */
  heaviest(): string[] {
    return [...this.#connections].sort((a, b) => b[1] - a[1]).map(([ip]) => ip);
  }

  startRequest(ip: string): void {
    this.#requests.add(ip);
  }

  endRequest(ip: string): void {
    this.#requests.remove(ip);
  }

  /** Whether the client has more requests in flight than limits.requestsPerClient: it waits behind others under contention. */
  busy(ip: string): boolean {
    return this.maxRequests > 0 && this.#requests.get(ip) > this.maxRequests;
  }
}

function give(counts: Map<string, number>, key: string): void {
  const n = counts.get(key);
  if (n === undefined) return;
  if (n <= 1) counts.delete(key);
  else counts.set(key, n - 1);
}
