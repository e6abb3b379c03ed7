import type { Config } from '../config/schema.js';
import type { ClusterFailure } from '../health/cluster-failure.js';
import type { AttemptVerdict } from '../health/outlier-detector.js';
import type { MirroredNode } from '../nodes/node-set.js';
import type { TokenVerdict } from '../token/verifier.js';
import type { Suspicion } from '../token/token-guard.js';
import type { SharedFlight } from '../coalesce/blob-flights.js';

/** A good token verdict one worker reached, for the others: the token's hash only, never the token. */
export interface SharedVerdict {
  hash: string;
  verdict: TokenVerdict;
  until: number;
}

/** What the control plane sends a request worker's node set: every node's conditions, the cluster's failure, who keeps tokens away. */
export interface NodeMirror {
  nodes: MirroredNode[];
  /** The route classes every node fails on now (their answers are passed on, not retried). */
  clusterFailures: ClusterFailure[];
  /** Nodes whose clock is so far off that token requests go elsewhere (health/clock-skew.ts). */
  tokensAway: string[];
  /**
   * Nodes whose good answers passive detection waits for (OutlierDetector.awaitsAnswer): workers
   * send those, and of the other nodes only failures.
   */
  answersWanted: string[];
}

/** A node as a worker names it to the control plane. */
export interface NodeRef {
  name: string;
  url: string;
}

/** What one worker has done, for /-/status, /metrics and the status page's charts. */
export interface WorkerReport {
  /** Per node: attempts in flight, sent, failed; requests waiting for its connections. */
  nodes: Record<string, { inflight: number; requests: number; failures: number; queued: number }>;
  /** Client requests handled since the worker started, and in flight now. */
  requests: number;
  inflight: number;
  /** null when it could not be read (the process is out of file descriptors). */
  rss: number | null;
}

export type PinOp =
  | { op: 'get'; key: string; renewMs?: number }
  | { op: 'setIfAbsent'; key: string; value: string; ttlMs: number; owner?: string }
  | { op: 'set'; key: string; value: string; ttlMs: number; owner?: string }
  | { op: 'delete'; key: string };

/** Control plane to worker. */
export type ToWorker =
  /** The nodes' state comes with the config: a worker serves on it from its first connection. */
  | { t: 'start'; config: Config; port: number; index: number; mirror: NodeMirror; handoff: boolean }
  /** A client connection the control plane accepted (proxy.connectionBalance least-connections): its socket comes as the message's handle. */
  | { t: 'conn'; seq: number }
  /** The control plane heard 'draining': every connection it sent before this (numbers up to `through`) has reached the worker or was dropped. */
  | { t: 'drain-ack'; through: number }
  /** Sent now and then while sockets are in transit: a number up to `through` not yet seen was dropped on the way. */
  | { t: 'conn-check'; through: number }
  | { t: 'nodes'; mirror: NodeMirror }
  | { t: 'config'; config: Config }
  | ({ t: 'verified' } & SharedVerdict)
  /** Another worker's blob flight (coalesce.enabled) started, settled, or is gone (undefined). */
  | { t: 'flight'; digest: string; flight: SharedFlight | undefined }
  /** Another worker kept this cached blob or saw it match its digest: trust it. */
  | { t: 'cache-trusted'; digest: string }
  | { t: 'answer'; id: number; value: unknown }
  | { t: 'ask'; id: number; what: 'report' | 'metrics' }
  | { t: 'drain'; graceMs: number };

/** Worker to control plane. */
export type FromWorker =
  | { t: 'listening'; port: number }
  /** Handed sockets numbered up to `through` are told of (those in `declined` not taken: hand them on), and `closed` more closed. */
  | { t: 'told'; through: number; declined: number[]; closed: number }
  /** This worker began to drain (a signal, a reload it could not apply): hand it no more connections. */
  | { t: 'draining' }
  | { t: 'failed'; message: string }
  /**
   * Attempt verdicts in the order they ended (between two failures, one good answer per node and
   * route; see ProcessControlLink). Nodes are named
   * with their URL: after a reload gave a name a new URL, what the old address did is not the new one's.
   */
  | { t: 'verdicts'; items: Array<[node: NodeRef, verdict: AttemptVerdict]> }
  | { t: 'slow'; node: NodeRef }
  | { t: 'suspect'; node: NodeRef; why?: Suspicion }
  /** A client got a good token from the node (sent at most every few seconds per node). */
  | { t: 'good-issuer'; node: NodeRef }
  /** A reload the control plane sent could not be applied here (this worker keeps its config). */
  | { t: 'reload-failed'; problems: string[] }
  | { t: 'csrf' }
  | ({ t: 'verified' } & SharedVerdict)
  /** Blob flights (coalesce.enabled): may this worker lead the digest's pull; its flight's course. */
  | { t: 'flight-claim'; id: number; digest: string }
  | { t: 'flight-started'; flight: SharedFlight }
  | { t: 'flight-settled'; digest: string; ok: boolean }
  | { t: 'flight-closed'; digest: string }
  /** A verified blob entered the cache (cache.dir): the control plane keeps the host's cache within its size. */
  | { t: 'cache-added'; digest: string; size: number }
  /** A whole read of a cached blob matched its digest: the other workers trust it too. */
  | { t: 'cache-verified'; digest: string }
  | { t: 'pin'; id: number; pin: PinOp }
  | { t: 'answer'; id: number; value: unknown };
