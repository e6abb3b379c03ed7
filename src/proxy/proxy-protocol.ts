import { isIP } from 'node:net';

/**
 * The PROXY protocol header (versions 1 and 2, haproxy's proxy-protocol.txt) an L4 balancer puts
 * before a connection's first byte to say whose connection it is. Read here; which peers may send
 * one is the gate's business (proxy-protocol-gate.ts).
 */
export interface ProxyHeader {
  /** Bytes the header takes; what follows is the client's own. */
  length: number;
  /** The client's address; undefined for v2 LOCAL (the balancer's own check) and UNKNOWN/unspecified. */
  source: { address: string; port: number } | undefined;
}

export type ProxyHeaderRead =
  /** Too few bytes yet to tell. */
  | { kind: 'more' }
  /** The connection does not begin with a PROXY header. */
  | { kind: 'absent' }
  | { kind: 'header'; header: ProxyHeader }
  /** It begins like one and is not a valid one. */
  | { kind: 'invalid'; reason: string };

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CRLF included (the spec's 107). */
const V1_MAX = 107;
/** The most a v2 header may be: 16 bytes and a 16-bit length. */
export const MAX_PROXY_HEADER = 16 + 65_535;

export function readProxyHeader(buf: Buffer): ProxyHeaderRead {
  if (buf.length === 0) return { kind: 'more' };
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < 16 ? { kind: 'more' } : readV2(buf);
  if (startsLike(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? { kind: 'more' } : readV1(buf);
  return { kind: 'absent' };
}

/** Whether buf begins with a whole PROXY signature (v1's "PROXY ", v2's 12 bytes): it means to be a header. */
export function announcesProxyHeader(buf: Buffer): boolean {
  return (buf.length >= V1_PREFIX.length && startsLike(buf, V1_PREFIX)) || (buf.length >= V2_SIGNATURE.length && startsLike(buf, V2_SIGNATURE));
}

/** Whether buf's first bytes (as many as it has, up to the prefix's length) are the prefix's. */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

function readV1(buf: Buffer): ProxyHeaderRead {
  const eol = buf.indexOf('\r\n', 0, 'latin1');
  if (eol === -1) return buf.length >= V1_MAX ? { kind: 'invalid', reason: 'a v1 line longer than 107 bytes' } : { kind: 'more' };
  if (eol + 2 > V1_MAX) return { kind: 'invalid', reason: 'a v1 line longer than 107 bytes' };
  const line = buf.toString('latin1', 0, eol);
  if (/^PROXY UNKNOWN(?: [^\r\n]*)?$/.test(line)) return { kind: 'header', header: { length: eol + 2, source: undefined } };
  const m = /^PROXY (TCP4|TCP6) (\S+) (\S+) (\d{1,5}) (\d{1,5})$/.exec(line);
  const family = m?.[1] === 'TCP4' ? 4 : 6;
  if (m === null || isIP(m[2]!) !== family || isIP(m[3]!) !== family || Number(m[4]) > 65_535 || Number(m[5]) > 65_535) {
    return { kind: 'invalid', reason: 'a malformed v1 line' };
  }
  return { kind: 'header', header: { length: eol + 2, source: { address: m[2]!, port: Number(m[4]) } } };
}

function readV2(buf: Buffer): ProxyHeaderRead {
  const versionCommand = buf[12]!;
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: 'not version 2' };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: 'an unknown v2 command' };
  const length = 16 + buf.readUInt16BE(14);
  if (buf.length < length) return { kind: 'more' };
  // LOCAL: the balancer's own connection (a health check); the peer is who it is.
  if (command === 0) return { kind: 'header', header: { length, source: undefined } };
  const family = buf[13]!;
  if (family === 0x11 || family === 0x21) {
    const need = family === 0x11 ? 12 : 36;
    if (length < 16 + need) return { kind: 'invalid', reason: 'a v2 address block shorter than its family needs' };
    if (family === 0x11) return { kind: 'header', header: { length, source: { address: [...buf.subarray(16, 20)].join('.'), port: buf.readUInt16BE(24) } } };
    return { kind: 'header', header: { length, source: { address: ipv6Text(buf.subarray(16, 32)), port: buf.readUInt16BE(48) } } };
  }
  // UNSPEC, UNIX or UDP: no TCP client address to take.
  return { kind: 'header', header: { length, source: undefined } };
}

/** An IPv6 address as Node writes a peer's: compressed (RFC 5952), an IPv4-mapped one as ::ffff:a.b.c.d. */
function ipv6Text(bytes: Buffer): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${[...bytes.subarray(12, 16)].join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The URL parser writes IPv6 hosts in the canonical compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
