import { HTTP_TOKEN } from '../util/http-token.js';

/**
 * The credentials of a request, read the way the node will read them or not at all. harbor-lb
 * decides things from them (a token it blames a node for refusing, a user it pins, a session it
 * routes), so any byte-level room between its reading and the node's lets a client make
 * harbor-lb judge one thing while the node sees another. The rule is to accept only the forms on
 * which every reader agrees and leave the rest unread (no decision is taken from them):
 * - distribution 2.8 splits `Authorization` on single spaces and wants exactly two parts, the
 *   first `bearer` in any case; Go's parseBasicAuth wants `Basic ` (any case) and standard base64
 *   (it forgives bits left over in the last character: such a header is one more left unread
 *   here). A header that is not exactly `<scheme> <credentials>` in those alphabets is not read;
 * - Go's net/http reads cookies by splitting on `;`, trimming spaces, and skipping pairs with an
 *   invalid name or value; `Request.Cookie` takes the first of a name. Different parsers disagree
 *   on which of two values of one name counts, so two different values of a session cookie make
 *   the request ambiguous (refused with 400 by the caller). So does a session cookie spelled
 *   otherwise than `name=value`: Go since 1.20 trims a name before `=` (`sid =a` is sid) and
 *   takes a bare `sid` as an empty value, older Go and other readers skip both. A request with
 *   more than MAX_COOKIES cookies is ambiguous too: Go reads none of them past its limit.
 */

/** Go's net/http reads no cookie of a request that carries more (httpcookiemaxnum). */
export const MAX_COOKIES = 3000;

/** A JWS compact token: three base64url segments (a signature may be empty, never the others). */
const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/;
const BASIC = /^[Bb][Aa][Ss][Ii][Cc] ([A-Za-z0-9+/]+={0,2})$/;
/** Go's validCookieValueByte (after the surrounding quotes are stripped): 0x20-0x7e except `"`, `;` and `\`. */
const COOKIE_VALUE = /^[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The token of `Bearer <token>` in its one canonical form, else undefined. */
export function bearerToken(authorization: string): string | undefined {
  return BEARER.exec(authorization)?.[1];
}

/** The user name of `Basic <base64(user:password)>` in its one canonical form, else undefined. */
export function basicUser(authorization: string): string | undefined {
  const b64 = BASIC.exec(authorization)?.[1];
  if (b64 === undefined || b64.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  // Node's decoder forgives what Go's refuses (bits left over in the last character).
  if (bytes.toString('base64') !== b64) return undefined;
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon);
  return name.length > 0 && name.length <= 256 ? name : undefined;
}

/** A request's value of one cookie: absent, one value, or two different values (ambiguous). */
export type CookieRead = { value: string } | 'ambiguous' | undefined;

/**
 * The value of the first of `names` that the request carries, read as Go's net/http reads
 * cookies (`headers`: each Cookie header line as sent). Ambiguous: two different values of that
 * name, or any of `names` spelled otherwise than `name=value`.
 */
export function readCookie(headers: readonly string[], names: readonly string[]): { name: string; read: CookieRead } | undefined {
  const found = new Map<string, string | 'ambiguous'>();
  let oddlySpelled: string | undefined;
  let count = 0;
  for (const line of headers) {
    for (const part of line.split(';')) {
      if (++count > MAX_COOKIES) return { name: names[0]!, read: 'ambiguous' };
      const pair = trimSpaces(part);
      const eq = pair.indexOf('=');
      const spelled = eq < 0 ? pair : pair.slice(0, eq);
      const name = trimSpaces(spelled);
      // A cookie name is an RFC 9110 token (RFC 6265).
      if (!names.includes(name) || !HTTP_TOKEN.test(name)) continue;
      if (eq < 0 || spelled !== name) {
        // Which of these cookies counts then depends on the reader: the whole request is ambiguous.
        oddlySpelled ??= name;
        continue;
      }
      let value = pair.slice(eq + 1);
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      if (!COOKIE_VALUE.test(value)) continue;
      const seen = found.get(name);
      if (seen === undefined) found.set(name, value);
      else if (seen !== value) found.set(name, 'ambiguous');
    }
  }
  if (oddlySpelled !== undefined) return { name: oddlySpelled, read: 'ambiguous' };
  for (const name of names) {
    const v = found.get(name);
    if (v !== undefined) return { name, read: v === 'ambiguous' ? 'ambiguous' : { value: v } };
  }
  return undefined;
}

/** textproto.TrimString: spaces and tabs at both ends. */
function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}
