import { performance } from 'node:perf_hooks';
import type { ClusterNode } from '../nodes/node.js';
import type { Placement } from '../pins/placement.js';
import type { TokenHold } from '../token/token-guard.js';
import { isTokenRejection } from '../token/challenge.js';
import { attemptVerdict } from './attempt-verdict.js';
import { ProxyError } from './errors.js';
import type { Exchange } from './exchange.js';
import { forward, type ForwardOutcome } from './forward.js';
import type { Slot } from './node-admission.js';
import type { ProxyDeps } from './proxy-deps.js';

/** One attempt: the node and connection slot it got, and what the loop decided it may do. */
export interface AttemptPlan {
  node: ClusterNode;
  slot: Slot;
  /** 1 for the first attempt: later ones are retries, counted against the retry budget's share in flight. */
  number: number;
  /** A 502/503/504 from this node may be dropped for a retry elsewhere (somewhere to go, budget to go there). */
  dropGatewayErrors: boolean;
  /** Hold a 200 whole for token inspection. */
  hold: TokenHold | undefined;
  /** The bearer token a refusal of which is judged (token checks on, registry route). */
  bearer: string | undefined;
  /** Hold a token refusal back instead of passing it on: the request could be sent again elsewhere. */
  holdRefusals: boolean;
}

export interface AttemptResult {
  outcome: ForwardOutcome;
  /** The node refused the request's token (a 401 invalid_token), whether or not the answer was held back. */
  tokenRefused: boolean;
}

/**
 * Sends the request to one node and streams its answer, and tells what it saw to those that keep
 * account: the node's traffic and passive health (a client's doing is not the node's), the
 * answer watch (a slow answer asks for a check; a node taken out frees a waiting read), the
 * placement (upload locations and sessions pin), metrics. The slot is always released.
 */
export async function sendAttempt(deps: ProxyDeps, ex: Exchange, placement: Placement, plan: AttemptPlan): Promise<AttemptResult> {
  const { node } = plan;
  const bodylessRead = ex.body === undefined && (ex.method === 'GET' || ex.method === 'HEAD');
  const endTraffic = node.traffic.begin();
  if (plan.number > 1) deps.budget.retrying++;
  let nodeFailed = false;
  let tokenRefused = false;
  const sentAt = performance.now();
  // A body-less read that has no answer yet may go to another node if this one is taken out.
  let abortAttempt: ((err: Error) => void) | undefined;
  const answered = deps.answers.begin(node, bodylessRead ? () => abortAttempt?.(new ProxyError('NODE_TAKEN_OUT', 502, 'the node was taken out')) : undefined);
  let outcome: ForwardOutcome;
  try {
    outcome = await forward({
      node,
      method: ex.method,
      path: ex.url,
      headers: ex.headers,
      body: ex.body,
      req: ex.req,
      res: ex.res,
      rewriter: deps.rewriter,
      headersTimeout: ex.body === undefined ? deps.headersTimeout : deps.uploadHeadersTimeout,
      retryOnGatewayError: bodylessRead && plan.dropGatewayErrors,
      hold: plan.hold,
      onSent: (abort) => (abortAttempt = abort),
      onHead: (status, h) => {
        answered();
        if (plan.bearer !== undefined && isTokenRejection(status, h)) tokenRefused = true;
        if (status === 403 && ex.route === 'ui' && ex.method !== 'GET' && ex.method !== 'HEAD' && ex.session?.kind === 'csrf') deps.onCsrfRefusal?.();
        placement.observe(node, status, h);
      },
      holdBack: plan.holdRefusals ? isTokenRejection : undefined,
    });
    const verdict = attemptVerdict(outcome, ex.failureClass, ex.ranged);
    if (verdict !== undefined) deps.outliers.record(node, verdict);
    nodeFailed = verdict !== undefined && verdict.kind !== 'answered';
  } finally {
    answered();
    endTraffic(nodeFailed);
    plan.slot.release();
    if (plan.number > 1) deps.budget.retrying--;
  }
  deps.metrics.attempt(ex.route, node.name, sentAt, outcome.headAt);
  return { outcome, tokenRefused };
}
