import { isLocalShortage } from '../nodes/node-failure.js';
import type { ClusterNode } from '../nodes/node.js';
import type { Placement } from '../pins/placement.js';
import { sendAttempt, type AttemptResult } from './attempt.js';
import { slotFor } from './attempt-slot.js';
import { decideNext, type NextFacts } from './decide-next.js';
import { answerClient, type AttemptsEnding } from './final-answer.js';
import type { ForwardOutcome } from './forward.js';
import type { Exchange } from './exchange.js';
import type { ProxyDeps } from './proxy-deps.js';
import type { RouteReason } from './routing-record.js';
import type { Awaitable } from '../util/awaitable.js';

const CLIENT_LEFT: ForwardOutcome = { phase: 'client-gone', status: 0, bytesOut: 0, clientStalled: false };

/**
 * Places the request, makes attempts on one node after another while decideNext allows, and
 * answers the client one way or another.
 */
export async function runExchange(deps: ProxyDeps, ex: Exchange): Promise<void> {
  const placed = deps.pins.begin({ route: ex.route, method: ex.method, path: ex.path, clientIp: ex.clientIp, user: ex.user, userFrom: ex.userFrom, session: ex.session });
  // Awaited only when it is a promise: each await is a turn of the microtask queue (util/awaitable.ts).
  const placement = placed instanceof Promise ? await placed : placed;
  ex.record.affinity = placement.kind;
  let end: AttemptsEnding;
  deps.budget.active++;
  try {
    end = await attempts(deps, ex, placement);
  } finally {
    deps.budget.active--;
  }
  // Whatever the node did not read (it answered early, or failed) is drained, never left to stall the client.
  ex.body?.release();
  ex.record.bytesIn = ex.body?.bytes ?? 0;
  answerClient(ex.res, ex.record, ex.method, end, deps.writes);
  if (ex.record.error === 'QUEUE_TIMEOUT') deps.connections.count('QUEUE_TIMEOUT');
}

async function attempts(deps: ProxyDeps, ex: Exchange, placement: Placement): Promise<AttemptsEnding> {
  const { guard } = deps;
  const inspectToken = guard !== undefined && ex.route === 'token' && ex.method === 'GET' && ex.body === undefined;
  const bearer = guard !== undefined && (ex.route === 'v2' || ex.route === 'upload') ? ex.bearer : undefined;
  const resendable = ex.body === undefined || ex.body.buffered !== undefined;
  const pool = resendable ? 'fast' : 'upload';
  // An upload continues on its own node or not at all (another node may not know it), and a
  // pinned session stays with its node: they wait for its connections, never go elsewhere for them.
  const mayMove = !placement.mustStay;
  const tried = new Set<ClusterNode>(placement.avoid);
  const end: AttemptsEnding = { outcome: undefined, reached: false, queueTimedOut: false };
  let reason: RouteReason = placement.first;
  for (let number = 1; number <= deps.maxAttempts; number++) {
    // The client may leave during the pin lookup or between attempts: then no node is bothered.
    if (ex.res.destroyed) return { ...end, outcome: CLIENT_LEFT };
    const chosen = placement.next(deps.nodes.availableFor(ex.route), tried);
    if (chosen === undefined) return end;
    const admission = slotFor(deps, ex, chosen, pool, mayMove, tried);
    const admitted = admission instanceof Promise ? await admission : admission;
    if (admitted.kind === 'gone') continue; // its node left the set while it waited: another, as a new attempt
    if (admitted.kind !== 'slot') {
      // No connection came free within limits.queueTimeout, or the client left meanwhile.
      if (admitted.kind === 'left' || ex.res.destroyed) return { ...end, outcome: CLIENT_LEFT };
      return { ...end, queueTimedOut: true };
    }
    const { node, slot } = admitted;
    tried.add(node);
    // Whether another node is left to try; asked again after the attempt, which may have changed the answer.
    const untried = (): boolean => number < deps.maxAttempts && deps.nodes.availableFor(ex.route).some((n) => !tried.has(n));
    const anotherNode = untried();
    // An earlier attempt was sent: this one is a retry (record.node is still that attempt's node).
    if (end.outcome !== undefined) deps.metrics.retry(ex.route, ex.record.node!, reason, end.outcome.phase);
    ex.record.attempts = number;
    ex.record.node = node.name;
    ex.record.reason = reason;
    const result = await sendAttempt(deps, ex, placement, {
      node,
      slot,
      number,
      // A 5xx every node answers on this route is passed on at once: retrying it elsewhere only
      // adds load. Other routes retry as ever (a probe made every node answer 503 on one path).
      retryGatewayErrors: anotherNode && deps.budget.canRetry() && deps.outliers.clusterFailureOn(ex.route) === undefined,
      hold: inspectToken ? guard.holdFor(node) : undefined,
      bearer,
      // A registry refuses a token before it acts: a refused request can go elsewhere if its body can be sent again.
      holdRefusals: bearer !== undefined && resendable && anotherNode,
    });
    end.outcome = result.outcome;
    if (result.outcome.phase !== 'not-sent') end.reached = true;
    if (result.outcome.phase === 'gateway-error') end.gatewayAnswer = { outcome: result.outcome, node: node.name, reason };
    const learning = learnFromAnswer(deps, ex, placement, node, result, bearer);
    const learned = learning instanceof Promise ? await learning : learning;
    const next = decideNext({
      phase: result.outcome.phase,
      nodeTakenOut: (result.outcome.error as { code?: string } | undefined)?.code === 'NODE_TAKEN_OUT',
      localShortage: isLocalShortage(result.outcome.error),
      method: ex.method,
      body: ex.body === undefined ? 'none' : ex.body.buffered !== undefined ? 'buffered' : { touched: ex.body.touched },
      // A node that failed may be taken out by now, and one the ejection cap held back be available again.
      anotherNode: untried(),
      budgetAllows: deps.budget.canRetry(),
      ...learned,
    });
    if (next.kind === 'done') return end;
    reason = next.reason;
  }
  return end;
}

/**
 * What an attempt's answer teaches: a token response or a token refusal judged (the node's
 * evidence for the token rules), and the pins an answer earns. Returns the token facts decideNext needs.
 */
function learnFromAnswer(
  deps: ProxyDeps,
  ex: Exchange,
  placement: Placement,
  node: ClusterNode,
  { outcome, tokenRefused }: AttemptResult,
  bearer: string | undefined,
): Awaitable<Pick<NextFacts, 'token' | 'refusedTokenVerifies'>> {
  const { guard } = deps;
  if (outcome.phase === 'buffered') {
    return guard!.judgeTokenResponse(node, outcome.body!, 'traffic').then(({ verdict, subject }) => {
      // A good token issued to the Basic user is the node vouching for that login.
      if (verdict === 'good') placement.answered(node, outcome.status, placement.basicUser !== undefined && subject === placement.basicUser);
      return { token: verdict };
    });
  }
  if (outcome.phase === 'held-back') return guard!.judgeRejection(node, bearer, 'traffic').then((refusedTokenVerifies) => ({ refusedTokenVerifies }));
  if (tokenRefused) void guard!.judgeRejection(node, bearer, 'traffic');
  // Without token checks, the token service answering a Basic login 200 is what vouches for it.
  if (outcome.phase === 'complete') placement.answered(node, outcome.status, guard === undefined && ex.route === 'token' && outcome.status === 200);
  return {};
}
