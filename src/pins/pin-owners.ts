import { isIPv6 } from 'node:net';
import { spaceOf, type PinSpace } from './pin-spaces.js';

/** The spaces whose pins carry who made them: the ones clients' work depends on. */
const OWNED: ReadonlySet<PinSpace> = new Set(['upload', 'session']);

/** One space's owners: the keys each holds, least recently used first (a Set keeps insertion order). */
class OwnerSpace {
  readonly keysOf = new Map<string, Set<string>>();
  readonly ownerOf = new Map<string, string>();

  add(key: string, owner: string): void {
    if (this.ownerOf.get(key) !== owner) this.remove(key);
    let keys = this.keysOf.get(owner);
    if (keys === undefined) this.keysOf.set(owner, (keys = new Set()));
    keys.delete(key);
    keys.add(key);
    this.ownerOf.set(key, owner);
  }

  touch(key: string): void {
    const keys = this.keysOf.get(this.ownerOf.get(key)!);
    if (keys === undefined) return;
    keys.delete(key);
    keys.add(key);
  }

  remove(key: string): void {
    const owner = this.ownerOf.get(key);
    if (owner === undefined) return;
    this.ownerOf.delete(key);
    const keys = this.keysOf.get(owner)!;
    keys.delete(key);
    if (keys.size === 0) this.keysOf.delete(owner);
  }
}

/**
 * Who made each upload and session pin (its user, else its address: pinOwner), so that a full
 * space makes room for a client's new pin out of that client's own pins when it holds any (its
 * least recently used one). A client that begins uploads or logs in without end then pushes out
 * at most one pin of another client (when it held none: the space's least recently used, as
 * before), and after that only its own, however long it goes on. Plain least-recently-used
 * eviction let one user who made about 1,300 upload POSTs a second push out every other upload's
 * pin of a 100,000-entry space within 77 s (a probe's measurement).
 */
export class PinOwners {
  readonly #spaces = new Map<PinSpace, OwnerSpace>([...OWNED].map((s) => [s, new OwnerSpace()]));

  /** `key` was written by `owner` (a space without owners ignores it); it is its most recently used. */
  add(key: string, owner: string): void {
    this.#spaces.get(spaceOf(key))?.add(key, owner);
  }

  /** `key` was read: the most recently used of its owner's. */
  touch(key: string): void {
    this.#spaces.get(spaceOf(key))?.touch(key);
  }

  /** `key` is gone (deleted, expired, pushed out, or rewritten without an owner). */
  remove(key: string): void {
    this.#spaces.get(spaceOf(key))?.remove(key);
  }

  /** The pin of `writer`'s to push out of `space`, full, for its new one: its least recently used; undefined when it holds none there. */
  victim(space: PinSpace, writer: string): string | undefined {
    return this.#spaces.get(space)?.keysOf.get(writer)?.values().next().value;
  }

  clear(): void {
    for (const s of this.#spaces.values()) {
      s.keysOf.clear();
      s.ownerOf.clear();
    }
  }

  /** Whether the space's pins carry owners. */
  static owned(space: PinSpace): boolean {
    return OWNED.has(space);
  }
}

/**
 * Who an upload or session pin is for, as PinOwners counts them: the user the client sent (a node
 * accepted the request, so the name is the node's), from whatever address; else the client's
 * address, an IPv6 one by its /64 (one host's share: it can take any address in it). So no client
 * becomes many owners by changing its address. Prefixed, so no user name shares an address's count.
 */
export function pinOwner(f: { user?: string; clientIp: string }): string {
  return f.user !== undefined && f.user !== '' ? `user:${f.user}` : addressOwner(f.clientIp);
}

/** A pin's owner by the client's address alone (a login's session pin: the user is in the body). */
export function addressOwner(ip: string): string {
  // An IPv4 address written in IPv6 (::ffff:a.b.c.d, NAT64's 64:ff9b::a.b.c.d) is one host: kept whole.
  return `addr:${isIPv6(ip) && !ip.includes('.') ? prefix64(ip) : ip}`;
}

/** The first four groups of an IPv6 address, written out (`2001:db8:0:1::/64`). */
function prefix64(ip: string): string {
  const at = ip.indexOf('%');
  const bare = at < 0 ? ip : ip.slice(0, at);
  const [head, tail] = bare.split('::') as [string, string | undefined];
  const before = head === '' ? [] : head.split(':');
  const after = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? before : [...before, ...Array<string>(Math.max(0, 8 - before.length - after.length)).fill('0'), ...after];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
