import { isIP } from 'node:net';

/**
 * Whether an address is reachable from this machine only: 127.0.0.0/8, ::1 (and its IPv4-mapped
 * form) or "localhost". The admin API may go without a token only there.
 */
export function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  const family = isIP(address);
  if (family === 4) return address.startsWith('127.');
  if (family !== 6) return false;
  // The URL parser writes IPv6 in one canonical, compressed form (0:0:0:0:0:0:0:1 -> ::1).
  const canonical = new URL(`http://[${address}]`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}
