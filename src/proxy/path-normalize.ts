/**
 * The canonical form of a request path, as Harbor's nginx reads it before routing: RFC 3986
 * equivalences (6.2.2) applied so that two spellings of one resource become one string. An
 * encoded slash (`%2F`) stays encoded: whether it is data or a separator is the router's call,
 * and the caller (classify) decides what to do with paths whose readers could disagree on it.
 */

/** RFC 3986 2.3: percent-encoded, these are the same as the characters themselves. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** A `%` not followed by two hex digits. */
const MALFORMED_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/** Whether the path holds a `%` that starts no escape (nginx and Go's net/http answer 400 to it). */
export function hasMalformedEscape(path: string): boolean {
  return MALFORMED_ESCAPE.test(path);
}

/**
 * Escapes of unreserved characters decoded; every other escape kept as written. A `%` that starts
 * no escape becomes `%25`, so a decoded character can never complete a new escape and a second
 * pass changes nothing (such paths are refused anyway: see hasMalformedEscape).
 */
function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/%(?:([0-9A-Fa-f]{2}))?/g, (escape, hex: string | undefined) => {
    if (hex === undefined) return '%25';
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : escape;
  });
}

/** RFC 3986 5.2.4 for an absolute path without empty segments: `.` and `..` resolved. */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // A dot segment at the end leaves a directory: "/a/b/.." is "/a/".
      if (i === last) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}

/**
 * The normalized form of an origin-form path (no query): unreserved characters decoded, runs of
 * slashes merged (nginx's merge_slashes), dot segments resolved. Idempotent. Anything not starting
 * with "/" is returned as it is.
 */
export function normalizePath(path: string): string {
  if (path.charCodeAt(0) !== 47 /* "/" */) return path;
  return removeDotSegments(decodeUnreserved(path).replace(/\/{2,}/g, '/'));
}

/** Whether a path holds a `.` or `..` segment, literally or with its dots percent-encoded. */
export function hasDotSegment(path: string): boolean {
  for (const s of decodeUnreserved(path).split('/')) if (s === '.' || s === '..') return true;
  return false;
}

/** Whether the path holds an encoded slash, which harbor-lb reads as data and nginx and Go's routers as a separator. */
export function hasEncodedSlash(path: string): boolean {
  return /%2f/i.test(path);
}

/** The path as a reader that decodes `%2F` into a separator sees it (Harbor's nginx, gorilla/mux without UseEncodedPath). */
export function withSlashesDecoded(path: string): string {
  return path.replace(/%2f/gi, '/');
}
