import { isBlobPath } from '../registry/blob-path.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Exchange } from '../proxy/exchange.js';
import { streamFlight, type BlobFlights, type FlightReader } from './blob-flights.js';

/** The HEAD that asks the registry whether this client may read the blob. */
const AUTHORIZE_TIMEOUT_MS = 10_000;
const DIGEST = /\/blobs\/(sha256:[a-f0-9]{64})$/;
/** How long a pull waits for the answer to an identical pull sent just before it, to join it. */
const PENDING_WAIT_MS = 2_000;

/**
 * Identical blob pulls share one read from a node (coalesce.enabled). The first client's pull is
 * streamed as always and teed into a flight; a client asking for the same digest while it is
 * under way is first put to the registry itself: a HEAD of the blob with the client's own
 * credentials, sent to a node. Only a 200 naming the same digest lets it join; anything else
 * sends its request the normal way, so it gets exactly the registry's own answer (401, 404…).
 * No authorization is decided or cached here.
 */
export class Coalescer {
  #next = 0;

  constructor(
    private readonly flights: BlobFlights,
    private readonly nodes: Pick<NodeSet, 'availableFor'>,
  ) {}

  /** Serves `ex` by joining a flight when it may, else by `run` (the normal exchange), teed when it may lead one. */
  async serve(ex: Exchange, run: () => Promise<void>): Promise<void> {
    const digest = this.#digestOf(ex);
    if (digest === undefined) return run();
    // A pull of this digest sent before and not answered yet is waited for (a rollout's clients arrive together).
    let reader: FlightReader | undefined = this.flights.reader(digest) ?? (await this.flights.awaitReader(digest, PENDING_WAIT_MS));
    if (reader === undefined && this.flights.shared) {
      // Another request worker may read it already, or be about to: one read per digest per host.
      reader = this.flights.remote(digest);
      if (reader === undefined && this.flights.pendingHere(digest)) {
        // Another pull of this worker is claiming it or waiting for its answer: that one's flight.
        reader = await this.flights.awaitReader(digest, PENDING_WAIT_MS);
        reader ??= this.flights.remote(digest) ?? (await this.flights.awaitRemote(digest, PENDING_WAIT_MS));
      } else if (reader === undefined && (await this.flights.claim(digest)) === 'elsewhere') {
        // 'lead' goes on below: this pull leads, its tee taking the pending mark the claim made.
        reader = await this.flights.awaitRemote(digest, PENDING_WAIT_MS);
      }
    }
    if (reader !== undefined) {
      // The reader holds the flight's file while the registry is asked.
      const node = this.#node();
      const joins = node !== undefined && (await this.#authorized(node, ex, digest)) && reader.state !== 'failed';
      if (joins) return this.#join(ex, reader, node);
      reader.detach();
    }
    const tee = this.flights.tee(digest);
    ex.tee = tee;
    try {
      await run();
    } finally {
      tee.done();
    }
  }

  #digestOf(ex: Exchange): string | undefined {
    if (ex.method !== 'GET' || ex.route !== 'v2' || ex.ranged || ex.body !== undefined || !isBlobPath(ex.path)) return undefined;
    return DIGEST.exec(ex.path)?.[1];
  }

  #node(): ClusterNode | undefined {
    const nodes = this.nodes.availableFor('v2');
    return nodes.length === 0 ? undefined : nodes[this.#next++ % nodes.length];
  }

  /** The registry's word for this client: a HEAD with its own headers, 200 and the same digest. */
  async #authorized(node: ClusterNode, ex: Exchange, digest: string): Promise<boolean> {
    try {
      const r = await node.pool.request({ method: 'HEAD', path: ex.url, headers: ex.headers, headersTimeout: AUTHORIZE_TIMEOUT_MS, bodyTimeout: AUTHORIZE_TIMEOUT_MS });
      await r.body.dump();
      return r.statusCode === 200 && r.headers['docker-content-digest'] === digest;
    } catch {
      return false;
    }
  }

  /** Streams the flight's bytes to the client at the client's pace; a failed flight cuts it. */
  async #join(ex: Exchange, flight: FlightReader, node: ClusterNode): Promise<void> {
    const { res, record } = ex;
    record.node = node.name;
    record.reason = 'coalesced';
    record.attempts = 1;
    record.status = 200;
    this.flights.counts.joins++;
    try {
      res.writeHead(200, flight.headers);
      const result = await streamFlight(flight, res, 0, (n) => {
        record.bytesOut += n;
        this.flights.counts.bytes += n;
      }).catch((): 'failed' => (res.destroy(), 'failed'));
      if (result === 'gone') record.error = 'CLIENT_GONE';
      if (result === 'failed') record.error = 'NODE_CUT_RESPONSE: coalesced pull';
    } finally {
      flight.detach();
    }
  }
}
