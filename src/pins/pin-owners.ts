import { isIPv6 } from 'node:net';
import { spaceOf, type PinSpace } from './pin-spaces.js';

/** The spaces whose pins carry who made them: the ones clients' work depends on. */
const OWNED: ReadonlySet<PinSpace> = new Set(['upload', 'session']);

/** One space's owners: the keys each holds (oldest written first) and who holds how many. */
class OwnerSpace {
  readonly keysOf = new Map<string, Set<string>>();
  readonly ownerOf = new Map<string, string>();
  /** Owners by the number of keys they hold; `most` is the largest number held. */
  readonly holding = new Map<number, Set<string>>();
  most = 0;

  add(key: string, owner: string): void {
    if (this.ownerOf.get(key) === owner) return;
    this.remove(key);
    let keys = this.keysOf.get(owner);
    if (keys === undefined) this.keysOf.set(owner, (keys = new Set()));
    this.#move(owner, keys.size, keys.size + 1);
    keys.add(key);
    this.ownerOf.set(key, owner);
  }

  remove(key: string): void {
    const owner = this.ownerOf.get(key);
    if (owner === undefined) return;
    this.ownerOf.delete(key);
    const keys = this.keysOf.get(owner)!;
    keys.delete(key);
    this.#move(owner, keys.size + 1, keys.size);
    if (keys.size === 0) this.keysOf.delete(owner);
  }

  /** Counts change by one at a time, so the largest count is kept without a search. */
  #move(owner: string, from: number, to: number): void {
    if (from > 0) {
      const set = this.holding.get(from)!;
      set.delete(owner);
      if (set.size === 0) {
        this.holding.delete(from);
        if (this.most === from) this.most = to;
      }
    }
    if (to > 0) {
      let set = this.holding.get(to);
      if (set === undefined) this.holding.set(to, (set = new Set()));
      set.add(owner);
      if (to > this.most) this.most = to;
    }
  }
}

/**
 * Who made each upload and session pin (its user, else its address: pinOwner), so that a full
 * space gives up a pin of whoever holds the most there: the oldest one that owner wrote, its own
 * when the writer is among the largest holders. A client flooding the space with uploads or
 * logins then pushes out only its own pins, never another client's, however long it goes on;
 * plain least-recently-used eviction let one user who made about 1,300 upload POSTs a second
 * push out every other upload's pin of a 100,000-entry space within 77 s (a probe's measurement).
 */
export class PinOwners {
  readonly #spaces = new Map<PinSpace, OwnerSpace>([...OWNED].map((s) => [s, new OwnerSpace()]));

  /** `key` was written by `owner` (a space without owners ignores it). */
  add(key: string, owner: string): void {
    this.#spaces.get(spaceOf(key))?.add(key, owner);
  }

  /** `key` is gone (deleted, expired, pushed out, or rewritten without an owner). */
  remove(key: string): void {
    this.#spaces.get(spaceOf(key))?.remove(key);
  }

  /**
   * The key to push out of `space`, full, to make room for a pin `writer` makes; undefined when
   * the space has no owned keys (then its least recently used goes).
   */
  victim(space: PinSpace, writer: string): string | undefined {
    const s = this.#spaces.get(space);
    if (s === undefined || s.most === 0) return undefined;
    const largest = s.holding.get(s.most)!;
    const owner = largest.has(writer) ? writer : largest.values().next().value!;
    return s.keysOf.get(owner)!.values().next().value;
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
  return `addr:${isIPv6(ip) ? prefix64(ip) : ip}`;
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
