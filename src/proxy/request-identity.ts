import { randomFillSync } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { oneOfNames } from '../util/header-names.js';

/**
 * What ties one request together across the client, harbor-lb and the node: its `X-Request-Id`
 * (Harbor logs it) and its W3C trace context (`traceparent`, what tracing systems follow).
 */
export interface RequestIdentity {
  /** Sent to the node and back to the client: the client's own when well formed, else harbor-lb's id. */
  requestId: string;
  /** Sent to the node: the client's when valid, else a new trace harbor-lb starts. */
  traceparent: string;
  /** The trace id in it (32 hex digits), for the routing line. */
  traceId: string;
  /** The client's tracestate, kept only with the client's own traceparent (W3C: it belongs to that trace). */
  tracestate: string | undefined;
}

/**
 * A request id a client may choose: printable, no spaces or separators a log or a header could
 * trip on, at most 128 characters (a UUID, a ULID, a CI job's id). Anything else is replaced.
 */
const WELL_FORMED_ID = /^[A-Za-z0-9._:+/=@-]{1,128}$/;

const MAX_TRACESTATE = 512;

/** The ids W3C Trace Context forbids, as TraceIds.next gives them (lower-case hex, 16 and 8 bytes). */
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/** Which of the headers that carry a request's identity a header is ('' for any other). */
const identityName = oneOfNames(['x-request-id', 'traceparent', 'tracestate']);

/** W3C Trace Context, version 00 exactly; a later version's first four fields, more may follow (spec 3.2.4). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Random ids for new traces, drawn from a block of random bytes taken 4 KiB at a time: one
 * randomFillSync per 170 requests instead of two per request (which cost ~4% of a small GET's CPU).
 */
export class TraceIds {
  readonly #block = Buffer.allocUnsafe(4096);
  #at = this.#block.length;

  /** `bytes` random bytes as lower-case hex. */
  next(bytes: number): string {
    if (this.#at + bytes > this.#block.length) {
      randomFillSync(this.#block);
      this.#at = 0;
    }
    const hex = this.#block.toString('hex', this.#at, this.#at + bytes);
    this.#at += bytes;
    return hex;
  }
}

/** Reads the client's request id and trace context from its raw headers; starts what is missing or malformed. */
export function requestIdentity(raw: readonly string[], ownId: string, traceIds: TraceIds = new TraceIds()): RequestIdentity {
  let ids = 0;
  let id: string | undefined;
  let parents = 0;
  let parent: string | undefined;
  const states: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = identityName(raw[i]!);
    if (lower === 'x-request-id') {
      ids++;
      id = raw[i + 1]!.trim();
    } else if (lower === 'traceparent') {
      parents++;
      parent = raw[i + 1]!.trim();
    } else if (lower === 'tracestate') states.push(raw[i + 1]!);
  }
  const requestId = ids === 1 && WELL_FORMED_ID.test(id!) ? id! : ownId;
  const trace = parents === 1 ? validTrace(parent!) : undefined;
  if (trace !== undefined) {
    const tracestate = states.length > 0 ? states.join(',') : undefined;
    // W3C: a tracestate past 512 characters may be dropped; one that long is not passed on whole.
    return { requestId, traceparent: parent!, traceId: trace, tracestate: tracestate !== undefined && tracestate.length <= MAX_TRACESTATE ? tracestate : undefined };
  }
  // Both ids from one draw of 24 bytes: each hex encoding is a call into Node's C++.
  const fresh = traceIds.next(24);
  let traceId = fresh.slice(0, 32);
  // All zeros is not a valid trace id (nor span id): 2^-128, but the rule is the rule.
  while (traceId === ZERO_TRACE_ID) traceId = traceIds.next(16);
  let spanId = fresh.slice(32);
  while (spanId === ZERO_SPAN_ID) spanId = traceIds.next(8);
  return { requestId, traceparent: `00-${traceId}-${spanId}-00`, traceId, tracestate: undefined };
}

/** The trace id of a valid traceparent, else undefined. */
function validTrace(value: string): string | undefined {
  const m = TRACEPARENT.exec(value);
  if (m === null) return undefined;
  const [, version, traceId, parentId, , rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return undefined;
  return traceId;
}

/** Headers harbor-lb sets itself from the identity: whatever the client sent under these names is replaced. */
export const IDENTITY_HEADERS: ReadonlySet<string> = new Set(['x-request-id', 'traceparent', 'tracestate']);

const RESPONSE_ID = Symbol('harbor-lb.requestId');
type Tagged = ServerResponse & { [RESPONSE_ID]?: string };

/** Marks a response with its request id, for answers harbor-lb writes itself (errors.ts). */
export function tagResponse(res: ServerResponse, requestId: string): void {
  (res as Tagged)[RESPONSE_ID] = requestId;
}

/** The request id a response was tagged with, if any. */
export function requestIdOf(res: ServerResponse): string | undefined {
  return (res as Tagged)[RESPONSE_ID];
}
