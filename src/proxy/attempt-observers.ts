import { performance } from 'node:perf_hooks';
import type { RetryBudget } from '../balance/retry-budget.js';
import type { AnswerWatch, StreamedBody } from '../health/answer-watch.js';
import type { AttemptVerdict, OutlierDetector } from '../health/outlier-detector.js';
import type { ClusterNode } from '../nodes/node.js';
import type { Route } from '../registry/route.js';
import { ProxyError } from './errors.js';
import type { ForwardOutcome } from './forward.js';
import type { RequestMetrics } from './request-metrics.js';

/** An attempt about to be sent. */
export interface AttemptStart {
  node: ClusterNode;
  route: Route;
  /** 1 for the first attempt; later ones are retries. */
  number: number;
  /** A GET or HEAD without a body: it can be ended early and sent elsewhere. */
  bodylessRead: boolean;
  /** Ends the attempt early (its node was taken out): it fails as 'no-response' with the error given. */
  abort(err: Error): void;
  /** The client's body as it streams to the node (none, or read up front: undefined). */
  streamed: StreamedBody | undefined;
}

/** How the attempt ended; `verdict` is what it says about its node (undefined: nothing, the client's doing). */
export interface AttemptEnd {
  outcome: ForwardOutcome | undefined;
  verdict: AttemptVerdict | undefined;
}

/** What watches one attempt: told when its node's answer begins, and once when it ends. */
export interface AttemptWatch {
  head?(): void;
  end(e: AttemptEnd): void;
}

/** Keeps account of attempts (the way Traefik's passive health check wraps a handler): one per concern. */
export interface AttemptObserver {
  begin(a: AttemptStart): AttemptWatch;
}

/** The node's traffic counters: in flight, sent, failed (what least-requests and status read). */
export const nodeTraffic: AttemptObserver = {
  begin: ({ node }) => {
    const end = node.traffic.begin();
    return { end: ({ verdict }) => end(verdict !== undefined && verdict.kind !== 'answered') };
  },
};

/** Passive failure detection: what each attempt says about its node; a client's doing says nothing. */
export function outlierReports(outliers: Pick<OutlierDetector, 'record'>): AttemptObserver {
  return {
    begin: ({ node }) => ({
      end: ({ verdict }) => {
        if (verdict !== undefined) outliers.record(node, verdict);
      },
    }),
  };
}

/** Retries in flight, which the retry budget is a share of. */
export function retriesInFlight(budget: RetryBudget): AttemptObserver {
  return {
    begin: ({ number }) => {
      if (number === 1) return { end: () => {} };
      budget.retrying++;
      let ended = false;
      return {
        end: () => {
          if (!ended) budget.retrying--;
          ended = true;
        },
      };
    },
  };
}

/**
 * Waits for an answer: a slow one asks for a check, and a body-less read whose node is taken out
 * is ended to go elsewhere. While a body streams, only the node's time counts (see AnswerWatch).
 */
export function answerWaits(answers: AnswerWatch): AttemptObserver {
  return {
    begin: ({ node, bodylessRead, abort, streamed }) => {
      const elsewhere = bodylessRead ? () => abort(new ProxyError('NODE_TAKEN_OUT', 502, 'the node was taken out')) : undefined;
      const answered = answers.begin(node, elsewhere, streamed);
      return { head: answered, end: answered };
    },
  };
}

/** Time to the node's answer head, per route and node. */
export function attemptTimes(metrics: RequestMetrics): AttemptObserver {
  return {
    begin: ({ node, route }) => {
      const sentAt = performance.now();
      return {
        end: ({ outcome }) => {
          if (outcome !== undefined) metrics.attempt(route, node.name, sentAt, outcome.headAt);
        },
      };
    },
  };
}
