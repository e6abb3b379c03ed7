/**
 * Header rules of the data path. Requests carry flat [name, value, ...] arrays end to end
 * (node:http rawHeaders in, undici out; undici raw headers in, writeHead out) so no header
 * object is built per request.
 */
import { oneOfNames } from '../util/header-names.js';
import { IDENTITY_HEADERS, type RequestIdentity } from './request-identity.js';

/** Headers that describe one connection, never forwarded (RFC 9110 7.6.1), plus `expect`, which harbor-lb answers itself (RequestBody). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
  'expect',
]);

/** Headers the proxy sets itself: a trusted proxy's copies are kept (X-Forwarded-For appended to), anyone else's dropped. */
const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'forwarded', 'x-request-id']);

/**
 * Headers by which some layer behind us may take the client address, the host, the URL or the
 * method from the request instead of from the connection and the request line. From an untrusted
 * client each is a lie the node might believe (a spoofed address in Harbor's audit log, a URL
 * other than the one harbor-lb routed, a method other than the one retries were decided on), so
 * they are dropped. Client-address names: request-ip 3.3's lookup list; URL and host overrides:
 * Symfony/IIS rewrite headers and PortSwigger's host-header list; method overrides: the three
 * names frameworks honour. Any `x-forwarded-*` and `x-original-*` goes too (see isForwardingStyle).
 */
const SPOOFABLE = new Set([
  'x-forwarded',
  'forwarded-for',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'cf-connecting-ipv6',
  'cf-pseudo-ipv4',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-appengine-user-ip',
  'appengine-user-ip',
  'x-proxyuser-ip',
  'x-rewrite-url',
  'x-host',
  'x-http-host-override',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/** Whether an untrusted client's header is one the node could take as the proxy's word. */
function isForwardingStyle(lower: string): boolean {
  return FORWARDING.has(lower) || SPOOFABLE.has(lower) || lower.startsWith('x-forwarded-') || lower.startsWith('x-original-');
}

/**
 * Headers a client's Connection header may not remove: they say where the request goes, how its
 * body is framed and typed, and who sends it, and the proxy itself reads some of them (Host for
 * realms, Content-Length for replay, Authorization and Cookie for affinity). RFC 9110 7.6.1 lets
 * no sender name a field meant for every recipient as a connection option, so such a token is a
 * client error that is ignored: the header is kept and the other tokens still apply.
 */
const END_TO_END = new Set(['host', 'content-length', 'content-type', 'content-encoding', 'content-range', 'authorization', 'cookie']);

export interface ForwardingInfo {
  /** The address that connected to harbor-lb. */
  peerIp: string;
  /** The original client: peerIp, or taken from X-Forwarded-For when peerIp is a trusted proxy. */
  clientIp: string;
  proto: 'http' | 'https';
  /** Whether peerIp is a trusted proxy whose forwarding headers are kept and appended to. */
  trusted: boolean;
  /** The request id and trace context the node gets, whatever the client sent under those names. */
  identity: RequestIdentity;
  /**
   * Ask the node for an uncompressed answer (`accept-encoding: identity`, the client's own value
   * dropped): set on the token route, whose responses the proxy reads to verify the token.
   */
  identityEncoding?: boolean;
}

/** `keep-alive` or `close` alone, in any case: what nearly every Connection header says. */
const keepAliveOrClose = oneOfNames(['keep-alive', 'close']);

/**
 * Tokens of a Connection header other than keep-alive/close: each names another hop-by-hop
 * header. Added to `into`, made when the first such token comes: the set, or undefined when none did.
 */
function connectionTokens(value: string, into: Set<string> | undefined): Set<string> | undefined {
  if (keepAliveOrClose(value) !== '') return into;
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && token !== 'keep-alive' && token !== 'close') (into ??= new Set()).add(token);
  }
  return into;
}

/** A client's Connection tokens minus the end-to-end headers no connection option may remove. */
function clientHopTokens(value: string, into: Set<string> | undefined): Set<string> | undefined {
  into = connectionTokens(value, into);
  if (into !== undefined) for (const name of END_TO_END) into.delete(name);
  return into;
}

/**
 * The headers sent to a node: client headers minus hop-by-hop ones, Host as the client sent it,
 * forwarding headers set by the proxy (an untrusted client's forwarding-style headers dropped).
 */
export function buildRequestHeaders(raw: readonly string[], info: ForwardingInfo): string[] {
  const out: string[] = [];
  let extraHop: Set<string> | undefined;
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (IDENTITY_HEADERS.has(lower)) continue;
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') extraHop = clientHopTokens(value, extraHop);
      continue;
    }
    if (info.trusted ? FORWARDING.has(lower) : isForwardingStyle(lower)) {
      if (info.trusted) {
        if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
        else if (lower === 'x-forwarded-proto') xfProto ??= value;
        else if (lower === 'x-forwarded-host') xfHost ??= value;
        else out.push(name, value);
      }
      continue;
    }
    if (lower === 'host') host = value;
    else if (lower === 'accept-encoding' && info.identityEncoding === true) continue;
    out.push(name, value);
  }
  if (extraHop !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (extraHop.has(out[i]!.toLowerCase())) out.splice(i, 2);
    }
  }
  out.push(
    'x-forwarded-for',
    xff === undefined ? info.peerIp : `${xff}, ${info.peerIp}`,
    'x-forwarded-proto',
    xfProto ?? info.proto,
    'x-real-ip',
    info.clientIp,
    'x-request-id',
    info.identity.requestId,
    'traceparent',
    info.identity.traceparent,
  );
  if (info.identity.tracestate !== undefined) out.push('tracestate', info.identity.tracestate);
  if (xfHost !== undefined || host !== undefined) out.push('x-forwarded-host', (xfHost ?? host)!);
  if (info.identityEncoding === true) out.push('accept-encoding', 'identity');
  return out;
}

/** The names buildRequestHeaders adds to a request (request-check.ts finds them in this set rather than reading them a character at a time). */
export const ADDED_REQUEST_HEADERS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-real-ip', 'x-request-id', 'traceparent', 'tracestate', 'x-forwarded-host', 'accept-encoding']);

/**
 * Maps URLs that point at a node's own origin to the public URL, so a client that follows a
 * realm or an upload Location comes back through the proxy. URLs elsewhere are left alone.
 */
export class OriginRewriter {
  #prefixes: string[] = [];
  #longest = 0;
  #public = '';

  constructor(
    private nodeUrls: readonly string[],
    publicUrl: string,
  ) {
    this.setPublicUrl(publicUrl);
  }

  /** The nodes changed (config reload): every node still in the set, draining ones included. */
  setNodeUrls(nodeUrls: readonly string[]): void {
    this.nodeUrls = nodeUrls;
    this.setPublicUrl(this.#public);
  }

  /** Also used when the public URL is only known once the listener is bound (port 0). */
  setPublicUrl(publicUrl: string): void {
    const pub = new URL(publicUrl);
    this.#public = pub.origin;
    this.#prefixes = [];
    for (const u of this.nodeUrls) {
      const url = new URL(u);
      const origin = url.origin.toLowerCase();
      this.#prefixes.push(origin);
      // The same origin spelled with its default port ("http://h:80") is the same node.
      if (url.port === '') this.#prefixes.push(`${origin}:${url.protocol === 'https:' ? 443 : 80}`);
    }
    // Harbor's own nginx overwrites X-Forwarded-Proto with its own scheme, so behind TLS
    // termination a node hands out http://<public host:port>/...; that port speaks only one scheme.
    if (pub.port !== '') this.#prefixes.push(`${pub.protocol === 'https:' ? 'http' : 'https'}://${pub.host}`.toLowerCase());
    this.#longest = Math.max(...this.#prefixes.map((p) => p.length));
  }

  get publicOrigin(): string {
    return this.#public;
  }

  /** The URL with a node origin replaced by the public one; the same string when it is not a node's. */
  rewriteUrl(value: string): string {
    const lower = value.slice(0, this.#longest).toLowerCase();
    for (const p of this.#prefixes) {
      if (lower.startsWith(p)) {
        const next = value.charCodeAt(p.length);
        // Only a whole origin: "/", "?", "#" or the end must follow ("http://h:5000" is not "http://h:50001").
        if (Number.isNaN(next) || next === 47 || next === 63 || next === 35) return this.#public + value.slice(p.length);
      }
    }
    return value;
  }

  /** A Bearer challenge with its realm rewritten when the realm points at a node. */
  rewriteChallenge(value: string): string {
    const m = /realm="([^"]*)"/i.exec(value);
    if (m === null) return value;
    const realm = m[1]!;
    const rewritten = this.rewriteUrl(realm);
    if (rewritten === realm) return value;
    return value.slice(0, m.index) + `realm="${rewritten}"` + value.slice(m.index + m[0].length);
  }
}

/** Which of the names buildResponseHeaders acts on a header is ('' for any other, kept as it is). */
const responseRuleName = oneOfNames([...HOP_BY_HOP, 'x-request-id', 'location', 'content-location', 'www-authenticate']);

/**
 * The headers sent to the client: node headers minus hop-by-hop ones (those the node's own
 * Connection header names too), Location and realm kept on the proxy.
 */
export function buildResponseHeaders(raw: readonly (Buffer | string)[], rewriter: OriginRewriter): string[] {
  const out: string[] = [];
  let extraHop: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    // The read pool's are strings already; undici's are Buffers.
    const n = raw[i]!;
    const v = raw[i + 1]!;
    const name = typeof n === 'string' ? n : n.toString('latin1');
    // latin1 both ways keeps header bytes exactly as the node sent them.
    let value = typeof v === 'string' ? v : v.toString('latin1');
    const lower = responseRuleName(name);
    // Most of an answer's headers are none of the rules' ('').
    if (lower === '') {
      out.push(name, value);
      continue;
    }
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') extraHop = connectionTokens(value, extraHop);
      continue;
    }
    // harbor-lb's own goes back to the client (forward.ts), whatever the node echoes.
    if (lower === 'x-request-id') continue;
    if (lower === 'location' || lower === 'content-location') value = rewriter.rewriteUrl(value);
    else if (lower === 'www-authenticate') value = rewriter.rewriteChallenge(value);
    out.push(name, value);
  }
  // Content-Length frames the body the client is about to get: never dropped on a node's say-so.
  extraHop?.delete('content-length');
  if (extraHop !== undefined && extraHop.size > 0) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (extraHop.has(out[i]!.toLowerCase())) out.splice(i, 2);
    }
  }
  return out;
}
