import type { RetryBudget } from '../balance/retry-budget.js';
import type { OutlierDetector } from '../health/outlier-detector.js';
import type { RoutingLog } from '../log/loggers.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Pins } from '../pins/pins.js';
import type { TokenGuard } from '../token/token-guard.js';
import type { AttemptObserver } from './attempt-observers.js';
import type { BodyRateWatch } from './body-rate.js';
import type { ClientLimits } from './client-limits.js';
import type { ConnectionGuard } from './connection-guard.js';
import type { OriginRewriter } from './headers.js';
import type { NodeAdmission } from './node-admission.js';
import type { RequestMetrics } from './request-metrics.js';
import type { TrustedPeers } from './trusted-peers.js';
import type { Coalescer } from '../coalesce/coalescer.js';
import type { AttemptDeadlines } from './attempt-deadlines.js';
import type { WriteBatch } from '../util/write-batch.js';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import type { UnreadBodyLimit } from './unread-body.js';
import type { TinyPieceLimit } from './tiny-pieces.js';
import type { LargeReads } from './client-reads.js';

/** What the request path is given by the composition root (app.ts): the only parts it may use. */
export interface ProxyDeps {
  /** The nodes that may take traffic now: the request path reads them, never writes node state. */
  nodes: Pick<NodeSet, 'available' | 'availableFor'>;
  /** Places each request: its pin, else its key's hash, else balancing; learns pins from answers. */
  pins: Pins;
  rewriter: OriginRewriter;
  trusted: TrustedPeers;
  /** The routing log: one line per request. */
  logger: RoutingLog;
  /** Request counters and latencies, recorded with the routing line and per attempt. */
  metrics: RequestMetrics;
  proto: 'http' | 'https';
  /** Passive failure detection: a failure shared by every node makes retrying elsewhere pointless. */
  outliers: Pick<OutlierDetector, 'clusterFailureOn'>;
  budget: RetryBudget;
  /** Token awareness; absent when token.rootCert is not configured. */
  guard: TokenGuard | undefined;
  /** Attempts per request, the first included. */
  maxAttempts: number;
  headersTimeout: number;
  uploadHeadersTimeout: number;
  /** Unique per app instance, so request ids from two proxies never collide. */
  instanceId: string;
  /** A UI request carrying a CSRF cookie was refused 403: the CSRF key check should run. */
  onCsrfRefusal?: () => void;
  /** Per-client counts: requests in flight. */
  limits: ClientLimits;
  /** Fair shares of each node's connections: an attempt takes a slot before it is sent. */
  admission: NodeAdmission;
  /** Keep account of each attempt (node traffic, passive health, answer waits, retries in flight, metrics). */
  observers: readonly AttemptObserver[];
  /** Minimum body rate while the proxy waits on a client. */
  rateWatch: BodyRateWatch;
  minBodyRate: number;
  /** Connection-level rejections (for the parser error behind a request that ended badly). */
  connections: ConnectionGuard;
  /** The node's time limits for requests without a body (one timer for all, not undici's per request). */
  deadlines?: AttemptDeadlines;
  /** Requests' heads to the nodes and small answers' ends, made together at the end of each turn (write-batch.ts). */
  writes: WriteBatch;
  /** Identical blob pulls share one node read (coalesce.enabled). */
  coalescer?: Coalescer;
  /** Told of each body chunk allocated per socket read, so V8 frees them before a full collection is due. */
  reclaimer: BufferReclaimer;
  /** Bounds what is read of a body after its answer (unread-body.ts). */
  unreadBodies: UnreadBodyLimit;
  /** How many tiny pieces a request body may come in (tiny-pieces.ts). */
  tinyPieces: TinyPieceLimit;
  /** Connections handed to a request worker may read a streaming body in large pieces (client-reads.ts). */
  largeReads?: LargeReads;
}
