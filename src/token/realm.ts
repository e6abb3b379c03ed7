/**
 * Headers that make a request to a node look like client traffic through the public URL, so
 * Harbor 2.x builds realms and Locations from the public name (probes and doctor send them).
 */
export function publicHostHeaders(publicUrl: string, userAgent: string): Record<string, string> {
  const pub = new URL(publicUrl);
  return { host: pub.host, 'x-forwarded-host': pub.host, 'x-forwarded-proto': pub.protocol.slice(0, -1), 'user-agent': userAgent };
}

/** The realm URL of a Bearer challenge (`Bearer realm="…",service="…"`). */
export function realmOf(challenge: string | undefined): string | undefined {
  return challenge === undefined ? undefined : /realm="([^"]*)"/i.exec(challenge)?.[1];
}

/** Whether two URLs share scheme, host and port; false when either is not a URL. */
export function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin.toLowerCase() === new URL(b).origin.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Whether `realm` names the public host and port with the other scheme (`http://` for a public
 * `https://` URL): a node whose external URL says http behind TLS termination (harbor#3933).
 */
export function realmSchemeMismatch(realm: string, publicUrl: string): boolean {
  try {
    const r = new URL(realm);
    const p = new URL(publicUrl);
    return r.protocol !== p.protocol && r.hostname.toLowerCase() === p.hostname.toLowerCase() && effectivePort(r) === effectivePort(p);
  } catch {
    return false;
  }
}

/** The port a URL connects to; a default port written out is the same port. */
function effectivePort(u: URL): string {
  return u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80';
}
