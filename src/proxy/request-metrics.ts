import type { Route } from '../registry/route.js';
import type { ForwardPhase } from './forward.js';

/**
 * What the request path records about each request, and nothing more: the port through which it
 * reaches the metrics (admin/metrics.ts implements it), so no prom-client type and nothing of the
 * admin listener reaches the request path.
 */
export interface RequestMetrics {
  /** One attempt on one node ended; times on performance.now()'s clock, `headAt` undefined when no response head came. */
  attempt(route: Route, node: string, sentAt: number, headAt: number | undefined): void;
  /** Another attempt is about to follow the one on `node`: the routing reason it carries, and how the one before ended. */
  retry(route: Route, node: string, reason: string, after: ForwardPhase): void;
  /** Once per request, where its routing line is written, with that line. */
  finished(request: FinishedRequest): void;
}

/** The routing line's fields the request counters read. */
export interface FinishedRequest {
  readonly method: string;
  readonly route: Route;
  readonly node: string | null;
  readonly status: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}
