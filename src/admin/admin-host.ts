import { isIP } from 'node:net';

/** What a Host header may hold: a name or IP literal and a port, nothing else (no userinfo, path or spaces). */
const HOST_HEADER = /^[A-Za-z0-9._~:[\]-]+$/;

/**
 * Whether the admin listener may answer a request naming this Host without the admin token.
 * DNS rebinding needs a name: a page on a name an attacker re-points at the admin address is
 * same-origin with the listener to the browser, but its Host header still carries that name. So
 * an IP literal (any address), `localhost` (resolved by the machine, not by DNS) and the names
 * the operator listed are answered; any other name is not. `allowed` holds lower-case names.
 */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (header === undefined) return true; // HTTP/1.0 without Host: not a browser
  if (!HOST_HEADER.test(header)) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${header}`).hostname;
  } catch {
    return false;
  }
  // The URL parser lower-cases names, writes IPv4 in dotted form and IPv6 in brackets.
  if (isIP(hostname.startsWith('[') ? hostname.slice(1, -1) : hostname) !== 0) return true;
  return hostname === 'localhost' || allowed.has(hostname);
}
