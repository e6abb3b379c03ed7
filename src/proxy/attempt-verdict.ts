import type { AttemptVerdict } from '../health/outlier-detector.js';
import { isLocalShortage, nodeFailure, nodeFailureLabel } from '../nodes/node-failure.js';
import type { ForwardOutcome } from './forward.js';

/**
 * What an attempt says about its node, or undefined when it says nothing: the client hung up,
 * undici refused what the client shaped, harbor-lb was waiting on the client when the node gave
 * up (a stalled upload or reader: nginx's client_body_timeout and send_timeout), harbor-lb ran
 * short itself (out of file descriptors: isLocalShortage), or the node
 * cut an answer the client chose (a 4xx such as 416 for a Range past the end, or any ranged read).
 */
export function attemptVerdict(o: ForwardOutcome, route: string, ranged: boolean): AttemptVerdict | undefined {
  switch (o.phase) {
    case 'client-gone':
    case 'unsendable':
      return undefined;
    case 'buffered':
    case 'held-back':
      return { kind: 'answered', route };
    case 'complete':
    case 'gateway-error':
      return o.status >= 502 && o.status <= 504 ? { kind: 'gateway', status: o.status, route } : { kind: 'answered', route };
    case 'not-sent':
      if (isLocalShortage(o.error)) return undefined;
      return { kind: 'unreachable', code: nodeFailure(o.error).code };
    default:
      if (o.clientStalled || isLocalShortage(o.error)) return undefined;
      if (o.phase === 'cut' && (ranged || (o.status >= 400 && o.status < 500))) return undefined;
      return { kind: 'failed', code: nodeFailureLabel(o.error) };
  }
}
