import type { TokenResponseVerdict } from '../token/token-guard.js';
import type { ForwardPhase } from './forward.js';

/** What the attempt loop does after an attempt. */
export type Next = { kind: 'done' } | { kind: 'again'; reason: 'retried' | 'failover' | 'reissued' };

/** Everything the decision depends on, gathered before it is made (the token verdicts are awaited then). */
export interface NextFacts {
  phase: ForwardPhase;
  /** The attempt was ended because its node was taken out while it waited (outside the retry budget). */
  nodeTakenOut: boolean;
  /** harbor-lb itself ran short (out of file descriptors...): another node would fare no better, and a pinned upload's would not know it. */
  localShortage?: boolean;
  method: string;
  /** The request's body: none, read whole up front (can be sent again), or streaming (and whether any of it went out). */
  body: 'none' | 'buffered' | { touched: boolean };
  /** Another available node not tried yet, and attempts left. */
  anotherNode: boolean;
  /** The cluster-wide retry budget allows one more retry now. */
  budgetAllows: boolean;
  /** For a token response held for inspection: what the token was judged. */
  token?: TokenResponseVerdict;
  /** For an answer held back as a token refusal: whether the refused token verifies (the node may be at fault). */
  refusedTokenVerifies?: boolean;
}

/**
 * Whether to try another node, and under which reason: the retry rules in one place, with no I/O.
 * A request goes elsewhere only when that cannot have changed anything on a node: nothing reached
 * the node (failover, any method, while its body is untouched or read whole); a body-less GET/HEAD
 * got no answer or a 502/503/504 (retried, within the retry budget, unless its node was taken
 * out); a token the client must not see is reissued by another node; a registry refused a token
 * that verifies (retried, the body being sent again only if read whole). A partly sent upload body
 * is never replayed (the registry would store it twice).
 */
export function decideNext(f: NextFacts): Next {
  const done: Next = { kind: 'done' };
  switch (f.phase) {
    case 'buffered':
      return f.token === 'bad' && f.anotherNode ? { kind: 'again', reason: 'reissued' } : done;
    case 'held-back':
      return f.refusedTokenVerifies === true && f.anotherNode ? { kind: 'again', reason: 'retried' } : done;
    case 'complete':
    case 'client-gone':
    case 'cut':
    case 'unsendable':
      return done;
    default:
      break;
  }
  if (!f.anotherNode || f.localShortage === true) return done;
  if (typeof f.body === 'object' && f.body.touched) return done;
  if (f.phase === 'not-sent') return { kind: 'again', reason: 'failover' };
  const bodylessRead = f.body === 'none' && (f.method === 'GET' || f.method === 'HEAD');
  if (!bodylessRead || (f.phase !== 'no-response' && f.phase !== 'gateway-error')) return done;
  // A 502/503/504 was held back only because the budget allowed its retry then; a node taken out serves nothing.
  if (f.phase === 'no-response' && !f.nodeTakenOut && !f.budgetAllows) return done;
  return { kind: 'again', reason: 'retried' };
}
