/**
 * What undici would refuse to send, found before a node is chosen: such a request is the client's
 * problem (a 400), never a node's failure. Mirrors undici 7's request validation (lib/core/request.js):
 * method and header names are RFC 9110 tokens, values have no control characters, the target has
 * no byte outside 0x21-0xff, at most one Host and one Content-Length (digits only), and none of the
 * headers undici manages itself.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_TARGET = /[^\u0021-\u00ff]/;
const DIGITS = /^[0-9]+$/;
/** undici throws on these; the header rules strip them, so one left here is a bug caught early. */
const MANAGED = new Set(['transfer-encoding', 'keep-alive', 'upgrade', 'expect', 'connection']);

/** Why the request cannot be forwarded as it is, or undefined when it can. `headers` is what would go to the node. */
export function unforwardable(method: string, target: string, headers: readonly string[]): string | undefined {
  if (!TOKEN.test(method)) return 'invalid request method';
  if (target.charCodeAt(0) !== 47 /* "/" */) return 'the request target must be a path (origin-form)';
  if (BAD_TARGET.test(target)) return 'the request target holds a space or a control character';
  let hosts = 0;
  let lengths = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (!TOKEN.test(name)) return 'invalid header name';
    if (BAD_VALUE.test(value)) return `invalid characters in the ${name.toLowerCase()} header`;
    const lower = name.toLowerCase();
    if (lower === 'host' && ++hosts > 1) return 'more than one Host header';
    if (lower === 'content-length') {
      if (++lengths > 1) return 'more than one Content-Length header';
      if (!DIGITS.test(value)) return 'invalid Content-Length header';
    }
    if (MANAGED.has(lower)) return `the ${lower} header cannot be forwarded`;
  }
  return undefined;
}
