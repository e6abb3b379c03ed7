import type { ClusterNode } from '../nodes/node.js';
import type { Placement } from '../pins/placement.js';
import type { TokenHold } from '../token/token-guard.js';
import { isTokenRejection } from '../token/challenge.js';
import { attemptVerdict } from './attempt-verdict.js';
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
  /** A 502/503/504 from this node may be held back for a retry elsewhere (somewhere to go, budget to go there). */
  retryGatewayErrors: boolean;
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
 * Sends the request to one node and streams its answer. Those that keep account of attempts
 * (deps.observers: node traffic, passive health, the answer watch, retries in flight, metrics)
 * are told when it starts, when the node's answer begins and when it ends, with what the attempt
 * says about its node; the placement sees the answer's head (upload locations and sessions pin).
 * The slot is always released.
 */
export async function sendAttempt(deps: ProxyDeps, ex: Exchange, placement: Placement, plan: AttemptPlan): Promise<AttemptResult> {
  const { node } = plan;
  const bodylessRead = ex.body === undefined && (ex.method === 'GET' || ex.method === 'HEAD');
  let abortAttempt: ((err: Error) => void) | undefined;
  const start = {
    node,
    route: ex.route,
    number: plan.number,
    bodylessRead,
    abort: (err: Error) => abortAttempt?.(err),
    streamed: ex.body?.buffered === undefined ? ex.body : undefined,
  };
  const watches = deps.observers.map((o) => o.begin(start));
  let tokenRefused = false;
  let outcome: ForwardOutcome | undefined;
  try {
    outcome = await forward({
      node,
      method: ex.method,
      path: ex.url,
      headers: ex.headers,
      // An exchange reaches a node only once request-check passed its headers (request-handler.ts).
      headersChecked: true,
      body: ex.body,
      req: ex.req,
      res: ex.res,
      rewriter: deps.rewriter,
      headersTimeout: ex.body === undefined ? deps.headersTimeout : deps.uploadHeadersTimeout,
      retryOnGatewayError: bodylessRead && plan.retryGatewayErrors,
      hold: plan.hold,
      onSent: (abort) => (abortAttempt = abort),
      onHead: (status, h) => {
        for (const w of watches) w.head?.();
        if (plan.bearer !== undefined && isTokenRejection(status, h)) tokenRefused = true;
        if (status === 403 && ex.route === 'ui' && ex.method !== 'GET' && ex.method !== 'HEAD' && ex.session?.kind === 'csrf') deps.onCsrfRefusal?.();
        return placement.observe(node, status, h);
      },
      holdBack: plan.holdRefusals ? isTokenRejection : undefined,
      tee: ex.tee,
      deadlines: deps.deadlines,
      reclaimer: deps.reclaimer,
      writes: deps.writes,
    });
    return { outcome, tokenRefused };
  } finally {
    const end = { outcome, verdict: outcome === undefined ? undefined : attemptVerdict(outcome, ex.failureClass, ex.ranged) };
    for (const w of watches) w.end(end);
    plan.slot.release();
  }
}
