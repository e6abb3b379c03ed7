import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Pins, PinKind } from '../pins/pins.js';
import type { ClockSkew } from '../health/clock-skew.js';
import type { NodeHealth } from '../health/node-health.js';
import type { OutlierDetector } from '../health/outlier-detector.js';
import type { ClusterNode } from '../nodes/node.js';
import type { ClusterRuleChange, NodeSet } from '../nodes/node-set.js';
import type { Route } from '../registry/route.js';
import type { ForwardPhase } from '../proxy/forward.js';
import type { FinishedRequest, RequestMetrics } from '../proxy/request-metrics.js';
import { PIN_SPACES } from '../pins/pin-spaces.js';
import type { PinStore } from '../pins/pin-store.js';
import type { TokenGuard } from '../token/token-guard.js';
import type { Clock } from '../util/clock.js';
import { methodIndex, METHODS, retryCause, routeIndex, ROUTES, statusClassIndex, STATUS_CLASSES } from './metric-labels.js';
import { startRuntimeMetrics } from './runtime-metrics.js';
import { SeriesHistogram, type HistogramSeries } from './series-histogram.js';

/** What the admin listener serves at /metrics. */
export interface MetricsExposition {
  readonly contentType: string;
  render(): Promise<string>;
}

/** The live objects the scrape-time families read: the same ones routing and /-/status use. */
export interface MetricsSources {
  nodes: NodeSet;
  outliers: OutlierDetector;
  health: NodeHealth;
  skew?: ClockSkew;
  guard?: TokenGuard;
  /** Rejections of clients by reason (connection-level and per-client limits). */
  rejections: ReadonlyMap<string, number>;
  store: PinStore;
  pins: Pins;
  clock: Clock;
  /** Requests waiting for a node's connections now. */
  queued?: (node: ClusterNode) => number;
  /** Clients that joined another's blob pull, and the bytes served to them without a node read (coalesce.enabled). */
  coalesced?: { readonly joins: number; readonly bytes: number };
  /** The blob cache (cache.dir): its hits, and its size where this process keeps it within cache.maxSize. */
  cache?: { readonly counts: { readonly hits: number; readonly bytes: number }; stats(): { size: number; blobs: number; maxSize: number } };
}

/** From 1 ms to 5 minutes: token and ping answers take milliseconds, a large blob pull minutes. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const STATES = ['healthy', 'unhealthy', 'quarantined', 'draining', 'unknown'] as const;
const KINDS: readonly PinKind[] = ['upload', 'session', 'client'];
const VERDICTS = [
  ['good', 'good'],
  ['bad', 'bad'],
  ['registry_rejected', 'registryRejected'],
  ['suspected', 'suspected'],
  ['not_verified', 'notVerified'],
  ['not_a_token', 'notAToken'],
] as const;
const SERIES_PER_NODE = ROUTES.length * METHODS.length * STATUS_CLASSES.length;

type RequestLabels = { route: string; node: string; method: string; status_class: string };
interface RouteSeries {
  readonly labels: { route: string; node: string };
  bytesIn: number;
  bytesOut: number;
  upstream: HistogramSeries | undefined;
  firstByte: HistogramSeries | undefined;
}

/**
 * The request series of one node name ('' for requests harbor-lb answered itself): plain numbers
 * the request path adds to, in arrays indexed by route, method and status class, with their label
 * objects built once. prom-client reads them at scrape time.
 */
class NodeSeries {
  readonly requests: Array<{ readonly labels: RequestLabels; count: number } | undefined> = new Array(SERIES_PER_NODE).fill(undefined);
  readonly routes: Array<RouteSeries | undefined> = new Array(ROUTES.length).fill(undefined);
  constructor(readonly name: string) {}

  route(ri: number): RouteSeries {
    return (this.routes[ri] ??= { labels: { route: ROUTES[ri]!, node: this.name }, bytesIn: 0, bytesOut: 0, upstream: undefined, firstByte: undefined });
  }
}

type Emit<L extends string> = (labels: Record<L, string>, value: number) => void;

/**
 * harbor-lb's metrics in a registry of the app's own (never prom-client's global one), so two apps
 * in one process keep theirs apart. Request counts, bytes and latencies are recorded as requests
 * end; node state, flags, health, stickiness and token verdicts are read from the live objects at
 * each scrape, for the nodes configured at that moment (a node gone since has no gauge left).
 */
export class Metrics implements RequestMetrics, MetricsExposition {
  readonly registry = new Registry();
  readonly #byNode = new Map<string, NodeSeries>();
  readonly #requestDuration: SeriesHistogram;
  /** Its series by route index, made on first use. */
  readonly #requestDurationOf: Array<HistogramSeries | undefined> = new Array(ROUTES.length).fill(undefined);
  readonly #upstreamDuration: SeriesHistogram;
  readonly #firstByte: SeriesHistogram;
  readonly #retries: Counter<'route' | 'node' | 'reason' | 'cause'>;
  #panicMs = 0;
  #panicSince: number | undefined;
  readonly #stopRuntime: () => void;

  constructor(private readonly src: MetricsSources) {
    const registers = [this.registry];
    const { nodes, clock } = src;
    this.#requestFamilies();
    this.#requestDuration = new SeriesHistogram(
      'harbor_lb_request_duration_seconds',
      'Requests from arrival to the last byte sent, as clients see them, by route class.',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.#upstreamDuration = new SeriesHistogram(
      'harbor_lb_upstream_duration_seconds',
      'Attempts on a node, from sending the request to the end of the answer (or the failure), by route class and node.',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.#firstByte = new SeriesHistogram(
      'harbor_lb_upstream_first_byte_seconds',
      "Time to first byte: from sending the request to the node's response head, by route class and node.",
      LATENCY_BUCKETS,
      this.registry,
    );
    this.#retries = new Counter({
      name: 'harbor_lb_retries_total',
      help: 'Attempts sent again to another node, by route class, the node the earlier attempt went to, routing reason (retried, failover, reissued) and cause (not_sent, no_response, gateway_error, token_rejected, bad_token).',
      labelNames: ['route', 'node', 'reason', 'cause'],
      registers,
    });

    this.#nodeFamilies();
    this.#clusterFamilies();
    this.#stickyFamilies();
    const coalesced = src.coalesced;
    if (coalesced !== undefined) {
      this.#counter('harbor_lb_coalesced_requests_total', "Blob pulls served by joining another client's pull of the same digest (coalesce.enabled), each after the registry said yes to that client.", [], (emit) => emit({}, coalesced.joins));
      this.#counter('harbor_lb_coalesced_bytes_total', 'Blob bytes served to clients that joined another pull: bytes no node was asked to read again.', [], (emit) => emit({}, coalesced.bytes));
    }
    const cache = src.cache;
    if (cache !== undefined) {
      this.#counter('harbor_lb_cache_hits_total', 'Blob pulls served from the blob cache (cache.dir), each after the registry said yes to that client; Range requests included.', [], (emit) => emit({}, cache.counts.hits));
      this.#counter('harbor_lb_cache_bytes_total', 'Blob bytes served from the blob cache: bytes no node was asked to read again.', [], (emit) => emit({}, cache.counts.bytes));
      this.#gauge('harbor_lb_cache_size_bytes', 'Bytes the blob cache keeps on disk (cache.maxSize bounds it).', [], (emit) => emit({}, cache.stats().size));
      this.#gauge('harbor_lb_cache_blobs', 'Blobs the blob cache keeps on disk.', [], (emit) => emit({}, cache.stats().blobs));
    }
    nodes.on('rule', this.#onRule);
    if (nodes.panic) this.#panicSince ??= clock.now();
    this.#stopRuntime = startRuntimeMetrics(this.registry);
  }

  /** A counter whose values live elsewhere: emptied and refilled at every scrape. */
  #counter<L extends string>(name: string, help: string, labelNames: L[], read: (emit: Emit<L>) => void): void {
    const c: Counter<L> = new Counter({ name, help, labelNames, registers: [this.registry], collect: () => (c.reset(), read((l, v) => c.inc(l, v))) });
  }

  /** A gauge whose values live elsewhere: emptied and refilled at every scrape. */
  #gauge<L extends string>(name: string, help: string, labelNames: L[], read: (emit: Emit<L>) => void): void {
    const g: Gauge<L> = new Gauge({ name, help, labelNames, registers: [this.registry], collect: () => (g.reset(), read((l, v) => g.set(l, v))) });
  }

  /** Per request: counts and bytes by route and node, kept here as requests end. */
  #requestFamilies(): void {
    const counter = this.#counter.bind(this);
    counter('harbor_lb_requests_total', 'Requests by route class, node that answered ("" when harbor-lb answered itself), method (GET, HEAD, POST, PUT, PATCH, DELETE or OTHER) and status class (none: the client left before an answer).', ['route', 'node', 'method', 'status_class'], (emit) => {
      for (const n of this.#byNode.values()) for (const s of n.requests) if (s !== undefined) emit(s.labels, s.count);
    });
    counter('harbor_lb_request_body_bytes_total', 'Request body bytes read from clients, by route class and node.', ['route', 'node'], (emit) => {
      for (const n of this.#byNode.values()) for (const s of n.routes) if (s !== undefined) emit(s.labels, s.bytesIn);
    });
    counter('harbor_lb_response_body_bytes_total', 'Response body bytes sent to clients, by route class and node.', ['route', 'node'], (emit) => {
      for (const n of this.#byNode.values()) for (const s of n.routes) if (s !== undefined) emit(s.labels, s.bytesOut);
    });
  }

  /** Per node, read at scrape time: traffic, queues, ejections, state, flags, checks, clock, tokens. */
  #nodeFamilies(): void {
    const counter = this.#counter.bind(this);
    const gauge = this.#gauge.bind(this);
    const { nodes, outliers, health, skew, guard } = this.src;
    counter('harbor_lb_node_requests_total', 'Attempts forwarded to the node.', ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, n.traffic.requests);
    });
    counter('harbor_lb_node_failures_total', 'Attempts the node failed (refused, reset, timed out, 502/503/504).', ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, n.traffic.failures);
    });
    gauge('harbor_lb_node_inflight', 'Requests on the node now.', ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, n.traffic.inflight);
    });
    gauge('harbor_lb_node_queued', "Requests waiting for one of the node's connections (all busy), in the fair queue of limits.nodeShare.", ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, this.src.queued?.(n) ?? 0);
    });
    gauge('harbor_lb_node_ejections', 'Passive ejections in the current back-off series.', ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, outliers.ejections(n));
    });
    counter('harbor_lb_node_passive_ejections_total', 'Passive ejections of the node (failed requests in a row) since start; harbor_lb_node_ejections counts the current back-off series only.', ['node'], (emit) => {
      for (const n of nodes.all) emit({ node: n.name }, outliers.ejectionsTotal(n));
    });
    gauge('harbor_lb_node_state', '1 for the state the node is in.', ['node', 'state'], (emit) => {
      for (const n of nodes.all) for (const state of STATES) emit({ node: n.name, state }, n.state === state ? 1 : 0);
    });
    gauge('harbor_lb_node_flag', "1 for each flag raised on the node (codes as in /-/status); a cleared flag's series is gone.", ['node', 'code'], (emit) => {
      for (const n of nodes.all) for (const code of n.flags.keys()) emit({ node: n.name, code }, 1);
    });
    counter('harbor_lb_health_checks_total', 'Active health checks of the node by result (ok, fail).', ['node', 'result'], (emit) => {
      for (const n of nodes.all) {
        const r = health.results(n);
        emit({ node: n.name, result: 'ok' }, r?.ok ?? 0);
        emit({ node: n.name, result: 'fail' }, r?.fail ?? 0);
      }
    });
    if (skew) {
      gauge('harbor_lb_node_clock_offset_seconds', "The node's clock minus harbor-lb's (median of recent Date headers and token iat).", ['node'], (emit) => {
        for (const n of nodes.all) {
          const offset = skew.offset(n);
          if (offset !== undefined) emit({ node: n.name }, Math.round(offset) / 1000);
        }
      });
    }
    if (guard) {
      counter(
        'harbor_lb_token_verdicts_total',
        'Token checks per node: tokens it issued that verified (good) or not (bad), good cluster tokens its registry rejected, token responses passed on unverified (too large or compressed: not_verified) and 200 answers holding no token (not_a_token).',
        ['node', 'verdict'],
        (emit) => {
          for (const n of nodes.all) {
            const c = guard.countsOf(n);
            for (const [verdict, field] of VERDICTS) emit({ node: n.name, verdict }, c[field]);
          }
        },
      );
    }
  }

  /** The cluster: panic routing, a shared failure, clients refused. */
  #clusterFamilies(): void {
    const counter = this.#counter.bind(this);
    const gauge = this.#gauge.bind(this);
    const { nodes, outliers, rejections, clock } = this.src;
    gauge('harbor_lb_panic', '1 while panic routing is on (too few nodes available: every node that answers takes traffic).', [], (emit) => emit({}, nodes.panic ? 1 : 0));
    counter('harbor_lb_panic_seconds_total', 'Seconds spent in panic routing since start (rate() gives the share of time in panic, short episodes included).', [], (emit) => {
      const on = nodes.panic; // evaluates the rule now, so an episode that just began or ended is counted
      emit({}, (this.#panicMs + (on && this.#panicSince !== undefined ? clock.now() - this.#panicSince : 0)) / 1000);
    });
    gauge('harbor_lb_cluster_degraded', '1 while every node answers the same 5xx (a shared dependency fails; nobody is ejected).', [], (emit) => emit({}, outliers.clusterFailure ? 1 : 0));
    counter(
      'harbor_lb_client_rejections_total',
      'Clients refused by harbor-lb itself, by reason: a parser code, CONNECT, TOO_MANY_CONNECTIONS, REQUESTS_PER_CLIENT, NODE_SHARE, MIN_BODY_RATE, UNREAD_BODY.',
      ['reason'],
      (emit) => {
        for (const [reason, n] of rejections) emit({ reason }, n);
      },
    );
  }

  /** The sticky store and the pins. */
  #stickyFamilies(): void {
    const counter = this.#counter.bind(this);
    const gauge = this.#gauge.bind(this);
    const { store, pins } = this.src;
    counter('harbor_lb_sticky_lookups_total', 'Pin lookups by key kind (upload, session, client) and result: hit (a pin to a node that may take the request), miss (no pin), stale (a pin to a node that may not; it is replaced).', ['kind', 'result'], (emit) => {
      for (const kind of KINDS) {
        if (!pins.has(kind)) continue;
        const c = pins.lookups[kind];
        emit({ kind, result: 'hit' }, c.hit);
        emit({ kind, result: 'miss' }, c.miss);
        emit({ kind, result: 'stale' }, c.stale);
      }
    });
    counter('harbor_lb_sticky_store_errors_total', 'Sticky store operations that failed (timed out or refused); routing goes on without the store.', ['store'], (emit) => emit({ store: store.kind }, store.errors));
    gauge('harbor_lb_sticky_store_connected', '1 while the sticky store is reachable (always 1 for memory).', ['store'], (emit) => emit({ store: store.kind }, store.connected() ? 1 : 0));
    gauge('harbor_lb_sticky_store_entries', "Pins held in this instance (Redis: its near cache only).", ['store'], (emit) => emit({ store: store.kind }, store.size()));
    counter(
      'harbor_lb_pin_evictions_total',
      'Pins pushed out of a full space (sticky.maxEntries per space) to make room, by space: upload, session, visitor, client. Redis: keys this instance wrote (visitor keys pushed out are deleted from Redis).',
      ['store', 'space'],
      (emit) => {
        for (const space of PIN_SPACES) emit({ store: store.kind, space }, store.evictions[space]);
      },
    );
  }

  readonly #onRule = (change: ClusterRuleChange): void => {
    if (change.rule !== 'panic') return;
    const now = this.src.clock.now();
    if (change.active) this.#panicSince ??= now;
    else if (this.#panicSince !== undefined) {
      this.#panicMs += now - this.#panicSince;
      this.#panicSince = undefined;
    }
  };

  #node(name: string): NodeSeries {
    let n = this.#byNode.get(name);
    if (n === undefined) this.#byNode.set(name, (n = new NodeSeries(name)));
    return n;
  }

  attempt(route: Route, node: string, sentAt: number, headAt: number | undefined): void {
    const s = this.#node(node).route(routeIndex(route));
    (s.upstream ??= this.#upstreamDuration.series(s.labels)).observe((performance.now() - sentAt) / 1000);
    if (headAt !== undefined) (s.firstByte ??= this.#firstByte.series(s.labels)).observe((headAt - sentAt) / 1000);
  }

  retry(route: Route, node: string, reason: string, after: ForwardPhase): void {
    this.#retries.inc({ route, node, reason, cause: retryCause(after) });
  }

  finished(r: FinishedRequest): void {
    const node = this.#node(r.node ?? '');
    const ri = routeIndex(r.route);
    const mi = methodIndex(r.method);
    const ci = statusClassIndex(r.status);
    const i = (ri * METHODS.length + mi) * STATUS_CLASSES.length + ci;
    const s = (node.requests[i] ??= { labels: { route: ROUTES[ri]!, node: node.name, method: METHODS[mi]!, status_class: STATUS_CLASSES[ci]! }, count: 0 });
    s.count++;
    const bytes = node.route(ri);
    bytes.bytesIn += r.bytesIn;
    bytes.bytesOut += r.bytesOut;
    (this.#requestDurationOf[ri] ??= this.#requestDuration.series({ route: ROUTES[ri]! })).observe(r.durationMs / 1000);
  }

  /** The exposition's media type (prom-client's: Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops the runtime monitors and the panic listener; the app's close() calls it. */
  close(): void {
    this.src.nodes.off('rule', this.#onRule);
    this.#stopRuntime();
  }
}

export function createMetrics(sources: MetricsSources): Metrics {
  return new Metrics(sources);
}
