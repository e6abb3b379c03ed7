import type { NodeFailureLabel } from '../nodes/node-failure.js';

/**
 * Every code the routing line's `error` can start with: harbor-lb's own, then a node failure
 * (NODE_FAILURE_CODES, or a TLS code; see nodes/node-failure.ts). docs/routing-log.md has a row
 * for each, and a unit test holds the two together.
 */
export const ROUTING_ERROR_CODES = [
  // The client's doing: nothing is held against a node.
  'CLIENT_GONE',
  'CLIENT_TOO_SLOW',
  'BODY_IN_TINY_PIECES',
  'BAD_REQUEST_FRAMING',
  'REQUEST_NOT_FORWARDABLE',
  'TRANSFER_CODING_NOT_IMPLEMENTED',
  'PATH_NOT_CANONICAL',
  'EXPECTATION_FAILED',
  // Capacity.
  'QUEUE_TIMEOUT',
  'NO_NODE_AVAILABLE',
  // A node's, besides its connection failures.
  'NODE_CUT_RESPONSE',
  'BLOB_DIGEST_MISMATCH',
  'NODE_ANSWERED_502',
  'NODE_ANSWERED_503',
  'NODE_ANSWERED_504',
  // The host's: the blob cache's disk failed a read (the client saw a cut; no node is involved).
  'CACHE_READ_FAILED',
  // A bug of harbor-lb's: the client got 500.
  'INTERNAL_ERROR',
] as const;

export type RoutingErrorCode = (typeof ROUTING_ERROR_CODES)[number];

/** A routing line's `error`: a code, or a code and its detail after ': '. */
export type RoutingError = RoutingErrorCode | `${RoutingErrorCode}: ${string}` | NodeFailureLabel;
