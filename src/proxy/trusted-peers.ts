import { BlockList, isIP } from 'node:net';

/** Proxies in front of harbor-lb whose X-Forwarded-* headers are believed (listen.trustedProxies). */
export class TrustedPeers {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  constructor(entries: readonly string[]) {
    this.#empty = entries.length === 0;
    for (const e of entries) {
      const [ip, bits] = e.split('/') as [string, string | undefined];
      const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.#list.addAddress(ip, type);
      else this.#list.addSubnet(ip, Number(bits), type);
    }
  }

  has(ip: string): boolean {
    if (this.#empty || ip === '') return false;
    const type = isIP(ip);
    return type !== 0 && this.#list.check(ip, type === 6 ? 'ipv6' : 'ipv4');
  }

  /** The original client: the right-most X-Forwarded-For address that is not itself a trusted proxy. */
  clientOf(peerIp: string, xff: string | undefined): string {
    if (xff === undefined || !this.has(peerIp)) return peerIp;
    const hops = xff.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim();
      if (hop !== '' && !this.has(hop)) return isIP(hop) !== 0 ? hop : peerIp;
    }
    return peerIp;
  }
}

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) as "10.0.0.1". */
export function normalizeIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
