/**
 * Pins live in separate bounded spaces by what made them, so that pins anyone can cause cannot
 * push out pins of real work: an upload pin comes from a node's 202 to an authenticated POST, a
 * session pin from a login a node accepted, a visitor pin from a cookie a node hands any anonymous
 * visitor (core's CSRF cookie, a session cookie before login), a client pin from an identity a node
 * vouched for. Each space evicts its own least recently used entry when full; a flood in one never
 * touches another.
 */
export const PIN_SPACES = ['upload', 'session', 'visitor', 'client'] as const;
export type PinSpace = (typeof PIN_SPACES)[number];

/** The space of a store key (`upload:…`, `session:…`, `visitor:…`, `client:…`); anything else counts as a client pin. */
export function spaceOf(key: string): PinSpace {
  const colon = key.indexOf(':');
  const prefix = colon < 0 ? '' : key.slice(0, colon);
  return (PIN_SPACES as readonly string[]).includes(prefix) ? (prefix as PinSpace) : 'client';
}

/**
 * One least-recently-used map per pin space, each holding at most `maxPerSpace` entries (a Map
 * keeps insertion order: a touch moves a key to the end, the first key is the least recently
 * used). `onEvict` hears of every entry pushed out to make room.
 */
export class SpacedLru<V> {
  readonly #spaces = new Map<PinSpace, Map<string, V>>(PIN_SPACES.map((s) => [s, new Map()]));
  /** Entries pushed out to make room, per space, since start (for /metrics). */
  readonly evictions: Record<PinSpace, number> = { upload: 0, session: 0, visitor: 0, client: 0 };

  constructor(
    private readonly maxPerSpace: number,
    private readonly onEvict: (key: string) => void = () => {},
  ) {}

  /** The value, and the key becomes the most recently used of its space. */
  get(key: string): V | undefined {
    const space = this.#spaces.get(spaceOf(key))!;
    const v = space.get(key);
    if (v !== undefined) {
      space.delete(key);
      space.set(key, v);
    }
    return v;
  }

  /** Every entry, space by space, least recently used first. */
  *entries(): IterableIterator<[string, V]> {
    for (const space of this.#spaces.values()) yield* space.entries();
  }

  /** The least recently used entry of `space`, without touching the order. */
  oldest(space: PinSpace): [string, V] | undefined {
    return this.#spaces.get(space)!.entries().next().value;
  }

  /** The value, without touching the order. */
  peek(key: string): V | undefined {
    return this.#spaces.get(spaceOf(key))!.get(key);
  }

  set(key: string, value: V): void {
    const kind = spaceOf(key);
    const space = this.#spaces.get(kind)!;
    space.delete(key);
    if (space.size >= this.maxPerSpace) {
      const oldest = space.keys().next();
      if (!oldest.done) {
        space.delete(oldest.value);
        this.evictions[kind]++;
        this.onEvict(oldest.value);
      }
    }
    space.set(key, value);
  }

  delete(key: string): boolean {
    return this.#spaces.get(spaceOf(key))!.delete(key);
  }

  /** Pushes `key` out to make room (counted, and told to onEvict), as a full space does its least recently used. */
  evict(key: string): void {
    const kind = spaceOf(key);
    if (!this.#spaces.get(kind)!.delete(key)) return;
    this.evictions[kind]++;
    this.onEvict(key);
  }

  clear(): void {
    for (const space of this.#spaces.values()) space.clear();
  }

  get size(): number {
    let n = 0;
    for (const space of this.#spaces.values()) n += space.size;
    return n;
  }

  sizeOf(space: PinSpace): number {
    return this.#spaces.get(space)!.size;
  }
}
