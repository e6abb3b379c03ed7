/**
 * What undici would refuse to send, found before a node is chosen: such a request is the client's
 * problem (a 400, or a 501 for a transfer coding), never a node's failure. Mirrors undici 7's
 * request validation (lib/core/request.js): method and header names are RFC 9110 tokens, values
 * have no control characters, the target has no byte outside 0x21-0xff, at most one Host and one
 * Content-Length (digits only), and none of the headers undici manages itself.
 */
import type { RegistryErrorCode } from './errors.js';
import { oneOfNames } from '../util/header-names.js';
import { isHttpToken } from '../util/http-token.js';
import { ADDED_REQUEST_HEADERS } from './headers.js';

const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\u0021-\u00ff]/;
const DIGITS = /^[0-9]+$/;
/** undici throws on these; the header rules strip them, so one left here is a bug caught early. */
const MANAGED = new Set(['transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'connection']);
/** Which of the names the check acts on a header is ('' for any other). */
const checkedName = oneOfNames(['host', 'content-length', ...MANAGED]);

/** Why a request is answered by harbor-lb itself, before any node is involved. */
export interface Refusal {
  status: 400 | 417 | 501;
  /** The routing line's `error`. */
  error: 'REQUEST_NOT_FORWARDABLE' | 'TRANSFER_CODING_NOT_IMPLEMENTED' | 'PATH_NOT_CANONICAL' | 'EXPECTATION_FAILED';
  /** The registry error code in the JSON body. */
  code: RegistryErrorCode;
  reason: string;
}

const badRequest = (reason: string): Refusal => ({ status: 400, error: 'REQUEST_NOT_FORWARDABLE', code: 'BAD_REQUEST', reason });

/**
 * Credentials harbor-lb would read otherwise than some node or proxy behind it: two Authorization
 * headers (which one counts is each reader's choice), or two different values of the session
 * cookie. harbor-lb decides from them (a token it judges, a user or session it pins), so the node
 * must see exactly what it read; here it cannot, and the request is the client's 400.
 */
export function credentialRefusal(head: { authorizations: number; session: unknown }): Refusal | undefined {
  if (head.authorizations > 1) return badRequest('more than one Authorization header');
  if (head.session === 'ambiguous') return badRequest('two different values of the session cookie (sid, beegosessionID or _gorilla_csrf)');
  return undefined;
}

/**
 * What the client's HTTP version and Expect ask that harbor-lb cannot give: an HTTP/1.1 request
 * without Host (RFC 9112 3.2: a 400), or an expectation other than 100-continue (RFC 9110 10.1.1:
 * a 417). node:http would answer both itself, with an empty body and no routing line.
 */
export function protocolRefusal(minorVersion: number, host: string | undefined, expect: string | undefined): Refusal | undefined {
  if (host === undefined && minorVersion >= 1) return badRequest('an HTTP/1.1 request must carry a Host header');
  if (expect !== undefined && expect.trim().toLowerCase() !== '100-continue') {
    return { status: 417, error: 'EXPECTATION_FAILED', code: 'UNSUPPORTED', reason: `the expectation "${expect.slice(0, 64)}" is not understood; only 100-continue is` };
  }
  return undefined;
}

/** A request target other than a path (absolute-form, authority-form, asterisk-form): harbor-lb is no forward proxy. */
export function targetRefusal(): Refusal {
  return { status: 400, error: 'REQUEST_NOT_FORWARDABLE', code: 'UNSUPPORTED', reason: 'only origin-form request targets (a path starting with /) are taken' };
}

/** A path refused because harbor-lb and a node could read it as different requests (see classify). */
export function pathRefusal(reason: string): Refusal {
  return { status: 400, error: 'PATH_NOT_CANONICAL', code: 'BAD_REQUEST', reason };
}

/**
 * The transfer codings of the client's request, when they are anything but `chunked` alone.
 * node:http frames a body whose last coding is chunked and hands the rest over undecoded; the
 * proxy forwards the body re-chunked without the other codings, so the node would read gzip bytes
 * as plain ones. RFC 9112 6.1: a server that does not understand a transfer coding answers 501.
 */
function unsupportedTransferCoding(raw: readonly string[]): string | undefined {
  let codings: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') codings = codings === undefined ? raw[i + 1]! : `${codings},${raw[i + 1]!}`;
  }
  if (codings === undefined) return undefined;
  // Empty list elements are allowed and mean nothing (RFC 9110 5.6.1).
  const list = codings.split(',').map((c) => c.trim()).filter((c) => c !== '');
  return list.length === 1 && list[0]!.toLowerCase() === 'chunked' ? undefined : list.join(', ');
}

/**
 * Why the request cannot be forwarded as it is, or undefined when it can. `raw` is what the
 * client sent, `headers` what would go to the node.
 */
export function unforwardable(method: string, target: string, raw: readonly string[], headers: readonly string[]): Refusal | undefined {
  const coding = unsupportedTransferCoding(raw);
  if (coding !== undefined) {
    return { status: 501, error: 'TRANSFER_CODING_NOT_IMPLEMENTED', code: 'UNSUPPORTED', reason: `transfer coding "${coding}" is not implemented; send chunked or a Content-Length` };
  }
  if (!isHttpToken(method)) return badRequest('invalid request method');
  if (target.charCodeAt(0) !== 47 /* "/" */) return badRequest('the request target must be a path (origin-form)');
  if (BAD_TARGET.test(target)) return badRequest('the request target holds a space or a control character');
  let hosts = 0;
  let lengths = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    // Tokens all, and nearly every request carries them (buildRequestHeaders adds them).
    if (!ADDED_REQUEST_HEADERS.has(name) && !isHttpToken(name)) return badRequest('invalid header name');
    if (BAD_VALUE.test(value)) return badRequest(`invalid characters in the ${name.toLowerCase()} header`);
    const lower = checkedName(name);
    if (lower === 'host' && ++hosts > 1) return badRequest('more than one Host header');
    if (lower === 'content-length') {
      if (++lengths > 1) return badRequest('more than one Content-Length header');
      if (!DIGITS.test(value)) return badRequest('invalid Content-Length header');
    }
    // checkedName names host, content-length or one of MANAGED.
    if (lower !== '' && lower !== 'host' && lower !== 'content-length') return badRequest(`the ${lower} header cannot be forwarded`);
  }
  return undefined;
}
