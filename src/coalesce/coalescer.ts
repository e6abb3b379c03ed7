import { isBlobPath } from '../registry/blob-path.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Exchange } from '../proxy/exchange.js';
import { CorruptBlob, type BlobCache } from './blob-cache.js';
import { BLOB_HEADERS, streamFlight, type BlobFlights, type FlightReader } from './blob-flights.js';
import { byteRange } from './byte-range.js';

/** The HEAD that asks the registry whether this client may read the blob. */
const AUTHORIZE_TIMEOUT_MS = 10_000;
const DIGEST = /\/blobs\/(sha256:[a-f0-9]{64})$/;
/** How long a pull waits for the answer to an identical pull sent just before it, to join it. */
const PENDING_WAIT_MS = 2_000;

/** Request headers the authorizing HEAD does not carry: it asks about the whole blob. */
const NOT_FOR_HEAD: ReadonlySet<string> = new Set(['range', 'if-range']);

/** What a node's registry said to a client's HEAD of a blob: yes, with the head a GET would get. */
interface Authorized {
  headers: string[];
  size: number;
}

/**
 * Blob pulls by digest served without a node reading the blob again: by joining an identical pull
 * under way (coalesce.enabled), or from the blob cache (cache.dir). The first client's pull is
 * streamed as always and teed into a flight; a client asking for the same digest while it is
 * under way, or one the cache has, is first put to the registry itself: a HEAD of the blob with
 * the client's own credentials, sent to a node. Only a 200 naming the same digest (and, for the
 * cache, the same size) lets it be served here; anything else sends its request the normal way,
 * so it gets exactly the registry's own answer (401, 404…). No authorization is decided or cached.
 */
export class Coalescer {
  #next = 0;

  constructor(
    private readonly flights: BlobFlights,
    private readonly nodes: Pick<NodeSet, 'availableFor'>,
    /** Whether clients join flights (coalesce.enabled, live); with a cache alone pulls are still teed to fill it. */
    private joins: boolean,
    private readonly cache?: BlobCache,
  ) {}

  /** coalesce.enabled changed (reload): flights under way finish, with the clients already on them. */
  configure(joins: boolean): void {
    this.joins = joins;
  }

  /** Serves `ex` from the cache or by joining a flight when it may, else by `run` (the normal exchange), teed when it may lead one. */
  serve(ex: Exchange, run: () => Promise<void>): Promise<void> {
    // Not a blob pull it could serve: run's own promise, not one wrapping it (each wrap is turns of the microtask queue).
    if (!this.joins && this.cache === undefined) return run();
    const digest = this.#digestOf(ex);
    if (digest === undefined) return run();
    return this.#serveBlob(ex, digest, run);
  }

  async #serveBlob(ex: Exchange, digest: string, run: () => Promise<void>): Promise<void> {
    const cached = this.cache === undefined ? 'absent' : await this.#fromCache(ex, digest, this.cache);
    if (cached === 'served') return;
    // Refused: the registry said no to this client, which joins nothing either (its request gets the registry's own answer).
    if (ex.ranged || cached === 'refused') return run();
    const reader = this.joins ? await this.#flightOf(digest) : undefined;
    if (reader !== undefined) {
      // The reader holds the flight's file while the registry is asked.
      const node = this.#node();
      const joins = node !== undefined && (await this.#authorized(node, ex, digest)) !== undefined && reader.state !== 'failed';
      if (joins) return this.#join(ex, reader, node);
      reader.detach();
    }
    // Not joinable, only to be kept: a blob bigger than the cache is not spilled at all.
    const tee = this.flights.tee(digest, this.joins ? undefined : (size) => this.cache!.fits(size));
    ex.tee = tee;
    try {
      await run();
    } finally {
      tee.done();
    }
  }

  /** A flight of the digest to join: here, in another request worker, or one about to start (waited for). */
  async #flightOf(digest: string): Promise<FlightReader | undefined> {
    // A pull of this digest sent before and not answered yet is waited for (a rollout's clients arrive together).
    let reader: FlightReader | undefined = this.flights.reader(digest) ?? (await this.flights.awaitReader(digest, PENDING_WAIT_MS));
    if (reader !== undefined || !this.flights.shared) return reader;
    // Another request worker may read it already, or be about to: one read per digest per host.
    reader = this.flights.remote(digest);
    if (reader === undefined && this.flights.pendingHere(digest)) {
      // Another pull of this worker is claiming it or waiting for its answer: that one's flight.
      reader = await this.flights.awaitReader(digest, PENDING_WAIT_MS);
      reader ??= this.flights.remote(digest) ?? (await this.flights.awaitRemote(digest, PENDING_WAIT_MS));
    } else if (reader === undefined && (await this.flights.claim(digest)) === 'elsewhere') {
      // 'lead' goes on in serve(): this pull leads, its tee taking the pending mark the claim made.
      reader = await this.flights.awaitRemote(digest, PENDING_WAIT_MS);
    }
    return reader;
  }

  #digestOf(ex: Exchange): string | undefined {
    if (ex.method !== 'GET' || ex.route !== 'v2' || ex.body !== undefined || !isBlobPath(ex.path)) return undefined;
    return DIGEST.exec(ex.path)?.[1];
  }

  #node(): ClusterNode | undefined {
    const nodes = this.nodes.availableFor('v2');
    return nodes.length === 0 ? undefined : nodes[this.#next++ % nodes.length];
  }

  /** The registry's word for this client: a HEAD with its own headers, 200 and the same digest. */
  async #authorized(node: ClusterNode, ex: Exchange, digest: string): Promise<Authorized | undefined> {
    const headers: string[] = [];
    for (let i = 0; i < ex.headers.length; i += 2) {
      if (!NOT_FOR_HEAD.has(ex.headers[i]!.toLowerCase())) headers.push(ex.headers[i]!, ex.headers[i + 1]!);
    }
    try {
      const r = await node.pool.request({ method: 'HEAD', path: ex.url, headers, headersTimeout: AUTHORIZE_TIMEOUT_MS, bodyTimeout: AUTHORIZE_TIMEOUT_MS });
      await r.body.dump();
      if (r.statusCode !== 200 || r.headers['docker-content-digest'] !== digest) return undefined;
      const head: string[] = [];
      for (const [name, value] of Object.entries(r.headers)) {
        if (BLOB_HEADERS.has(name) && typeof value === 'string') head.push(name, value);
      }
      return { headers: head, size: Number(r.headers['content-length']) };
    } catch {
      return undefined;
    }
  }

  /**
   * Serves the blob from the cache, whole or the one byte range asked (docker resumes with Range),
   * once the registry said yes to this client. 'absent': the cache has it not, or not for this
   * request (a Range the node should answer); 'refused': the registry did not say yes.
   */
  async #fromCache(ex: Exchange, digest: string, cache: BlobCache): Promise<'served' | 'refused' | 'absent'> {
    if (ex.req.headers['if-range'] !== undefined) return 'absent';
    const blob = cache.open(digest);
    if (blob === undefined) return 'absent';
    try {
      const range = byteRange(ex.req.headers.range, blob.blobSize);
      // A Range of a blob this process has not seen match its digest goes to a node: it cannot be checked.
      const node = range.kind === 'other' || (range.kind === 'range' && !blob.trusted) ? undefined : this.#node();
      if (node === undefined) return 'absent';
      const head = await this.#authorized(node, ex, digest);
      if (head === undefined) return 'refused';
      // A size the registry does not agree with is not served (nor is it trusted to be the blob).
      if (head.size !== blob.blobSize) return 'absent';
      let status = 200;
      let headers = head.headers;
      let from = 0;
      if (range.kind === 'range') {
        status = 206;
        from = range.start;
        blob.size = range.end + 1;
        headers = headers.filter((_, i) => headers[i - (i % 2)] !== 'content-length');
        headers.push('content-length', String(range.end + 1 - range.start), 'content-range', `bytes ${range.start}-${range.end}/${blob.blobSize}`);
      }
      const { record } = ex;
      record.reason = 'cache';
      record.status = status;
      cache.counts.hits++;
      cache.served(blob);
      if (range.kind === 'whole') blob.checkWhole();
      await this.#send(ex, blob, node, status, headers, from, (n) => (cache.counts.bytes += n), (err) => {
        if (err instanceof CorruptBlob) cache.discard(blob);
      });
      if (blob.matched) cache.verified(blob);
      return 'served';
    } finally {
      blob.detach();
    }
  }

  /** Streams the flight's bytes to the client at the client's pace; a failed flight cuts it. */
  async #join(ex: Exchange, flight: FlightReader, node: ClusterNode): Promise<void> {
    ex.record.reason = 'coalesced';
    ex.record.status = 200;
    this.flights.counts.joins++;
    try {
      await this.#send(ex, flight, node, 200, flight.headers, 0, (n) => (this.flights.counts.bytes += n));
    } finally {
      flight.detach();
    }
  }

  async #send(ex: Exchange, from: FlightReader, node: ClusterNode, status: number, headers: string[], start: number, count: (n: number) => void, failed?: (err: unknown) => void): Promise<void> {
    const { res, record } = ex;
    record.node = node.name;
    record.attempts = 1;
    res.writeHead(status, headers);
    const result = await streamFlight(from, res, start, (n) => {
      record.bytesOut += n;
      count(n);
    }).catch((err: unknown): 'failed' => {
      res.destroy();
      failed?.(err);
      return 'failed';
    });
    if (result === 'gone') record.error = 'CLIENT_GONE';
    if (result === 'failed') record.error = record.reason === 'cache' ? 'CACHE_READ_FAILED' : 'NODE_CUT_RESPONSE: coalesced pull';
  }
}
