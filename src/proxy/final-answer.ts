import type { ServerResponse } from 'node:http';
import { isLocalShortage, nodeFailure, nodeFailureLabel } from '../nodes/node-failure.js';
import { sendRegistryError } from './errors.js';
import type { ForwardOutcome } from './forward.js';
import type { RouteReason, RoutingRecord } from './routing-record.js';
import type { WriteBatch } from '../util/write-batch.js';

/** How the attempts ended: the last attempt's outcome, if any was sent. */
export interface AttemptsEnding {
  outcome: ForwardOutcome | undefined;
  /** Some attempt reached a node (not every node refused the connection). */
  reached: boolean;
  /** The last wait for a node connection ran out (limits.queueTimeout). */
  queueTimedOut: boolean;
  /**
   * The last 502/503/504 held for a retry elsewhere, and the node and reason of its attempt: what
   * the client gets when no later attempt brought an answer (nothing reached the node, or no head came).
   */
  gatewayAnswer?: { outcome: ForwardOutcome; node: string; reason: RouteReason };
}

const REGISTRY_401 = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}';

/**
 * What the client gets, and what its routing line says, once no more attempts are made: the
 * node's answer as it streamed, a held answer written now, or harbor-lb's own registry-style
 * error in the node's stead.
 */
export function answerClient(res: ServerResponse, record: RoutingRecord, method: string, end: AttemptsEnding, writes: WriteBatch): void {
  let { outcome } = end;
  const isHead = method === 'HEAD';
  const kept = end.gatewayAnswer;
  if (kept !== undefined && (outcome?.phase === 'not-sent' || outcome?.phase === 'no-response')) {
    // A node's own answer beats harbor-lb's word for a later node that never answered.
    outcome = kept.outcome;
    record.node = kept.node;
    record.reason = kept.reason;
  }
  if (end.queueTimedOut && (outcome === undefined || outcome.phase === 'not-sent')) {
    record.status = 503;
    record.error = 'QUEUE_TIMEOUT';
    record.bytesOut = sendRegistryError(res, isHead, 503, 'UNAVAILABLE', 'every connection of the node was busy for limits.queueTimeout; try again', null, ['retry-after', '1']);
    return;
  }
  if (outcome === undefined) {
    record.status = 503;
    record.error = 'NO_NODE_AVAILABLE';
    record.bytesOut = sendRegistryError(res, isHead, 503, 'UNAVAILABLE', 'no Harbor node is available', null, ['retry-after', '5']);
    return;
  }
  record.bytesOut = outcome.bytesOut;
  record.status = outcome.status;
  if ((outcome.phase === 'not-sent' || outcome.phase === 'no-response') && isLocalShortage(outcome.error)) {
    // harbor-lb's own shortage, not the nodes': said as it is, and soon over (connections close).
    const failure = nodeFailure(outcome.error);
    record.status = 503;
    record.error = nodeFailureLabel(outcome.error);
    record.bytesOut = sendRegistryError(res, isHead, 503, 'UNAVAILABLE', failure.message, null, ['retry-after', '1']);
    return;
  }
  if (outcome.phase === 'not-sent' && !end.reached) {
    // Every node tried refused the connection: no node answers at all.
    record.status = 503;
    record.error = `NO_NODE_AVAILABLE: ${nodeFailureLabel(outcome.error)}`;
    record.bytesOut = sendRegistryError(res, isHead, 503, 'UNAVAILABLE', 'no Harbor node is available', { reason: nodeFailure(outcome.error).message }, ['retry-after', '5']);
    return;
  }
  answerOutcome(res, record, isHead, outcome, writes);
}

function answerOutcome(res: ServerResponse, record: RoutingRecord, isHead: boolean, outcome: ForwardOutcome, writes: WriteBatch): void {
  switch (outcome.phase) {
    case 'complete':
      return;
    case 'buffered':
      record.bytesOut = writeHeld(res, outcome.status, outcome.headers!, outcome.body!, writes);
      return;
    case 'held-back':
      record.bytesOut = writeHeld(res, 401, outcome.headers!, isHead ? Buffer.alloc(0) : Buffer.from(REGISTRY_401), writes);
      return;
    case 'client-gone':
      record.error = 'CLIENT_GONE';
      return;
    case 'cut':
      if ((outcome.error as { code?: string } | undefined)?.code === 'BLOB_DIGEST_MISMATCH') {
        record.error = 'BLOB_DIGEST_MISMATCH';
        return;
      }
      // A node that gave up on a client not reading (nginx's send_timeout): the client's doing.
      record.error = outcome.clientStalled ? 'CLIENT_TOO_SLOW: response body (the node gave up)' : `NODE_CUT_RESPONSE: ${nodeFailureLabel(outcome.error)}`;
      return;
    case 'unsendable': {
      // undici refused the request as the client shaped it (a shape request-check does not know yet).
      const code = (outcome.error as { code?: string } | undefined)?.code;
      const clients = code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED';
      record.status = clients ? 400 : 500;
      record.error = `REQUEST_NOT_FORWARDABLE: ${code ?? 'UNKNOWN'}`;
      record.bytesOut = clients
        ? sendRegistryError(res, isHead, 400, 'BAD_REQUEST', `harbor-lb cannot forward this request: ${outcome.error?.message ?? 'invalid request'}`)
        : sendRegistryError(res, isHead, 500, 'UNAVAILABLE', 'internal proxy error');
      return;
    }
    case 'gateway-error':
      // Held for a retry that did not happen, or did and found no node to answer: the node's own answer.
      if (outcome.headers !== undefined && outcome.body !== undefined) {
        record.bytesOut = writeHeld(res, outcome.status, outcome.headers, isHead ? undefined : outcome.body, writes);
        return;
      }
      record.error = `NODE_ANSWERED_${outcome.status as 502 | 503 | 504}`;
      record.bytesOut = sendRegistryError(res, isHead, outcome.status, 'UNAVAILABLE', `the node answered ${outcome.status}`, { node: record.node });
      return;
    default: {
      if (outcome.clientStalled) {
        // The node stopped waiting for a body the client had stopped sending (nginx's client_body_timeout).
        record.status = 408;
        record.error = 'CLIENT_TOO_SLOW: request body (the node gave up)';
        record.bytesOut = sendRegistryError(res, isHead, 408, 'TIMEOUT', 'the node stopped waiting for the request body: the client paused sending it', null, ['connection', 'close']);
        return;
      }
      const failure = nodeFailure(outcome.error);
      record.error = nodeFailureLabel(outcome.error);
      record.status = failure.status;
      record.bytesOut = sendRegistryError(res, isHead, failure.status, 'UNAVAILABLE', failure.message, { node: record.node });
    }
  }
}

/**
 * A response held back, written now; its own Content-Length is replaced by the real one. The
 * answer to a HEAD (`body` undefined) keeps the node's head as it came. Held answers are small (a
 * token, a gateway error): their end goes out with the turn's other writes (write-batch.ts).
 */
function writeHeld(res: ServerResponse, status: number, headers: string[], body: Buffer | undefined, writes: WriteBatch): number {
  if (res.headersSent || res.destroyed) return 0;
  if (body === undefined) res.writeHead(status, headers);
  else {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() !== 'content-length') out.push(headers[i]!, headers[i + 1]!);
    }
    out.push('content-length', String(body.length));
    res.writeHead(status, out);
  }
  writes.later(body === undefined ? () => res.end() : () => res.end(body));
  return body?.length ?? 0;
}
