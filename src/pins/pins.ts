import { LRUCache } from 'lru-cache';
import { boundedLoadPick, rendezvousOrder } from '../balance/rendezvous.js';
import { addressOwner } from './pin-owners.js';
import type { Selector } from '../balance/selector.js';
import type { Config } from '../config/schema.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import { uploadOfLocation } from '../registry/upload-path.js';
import { andThen, type Awaitable } from '../util/awaitable.js';
import { digest, PinKeys, type PinFacts, type PinKey, type PinKind } from './pin-key.js';
import type { PinStore } from './pin-store.js';
import { Placement, type PinWriter } from './placement.js';
import type { SessionEvidence } from './session-evidence.js';
import type { Route } from '../registry/route.js';

export type { PinFacts, PinKey, PinKind, SessionCookie, UserSource } from './pin-key.js';

/** How many visitor pins one address keeps: a flood from it pushes out its own, not other visitors'. */
export const VISITOR_PINS_PER_ADDRESS = 32;

/** What a pin lookup found: a usable node, or none; `stale` when the pin named a node that may not take the request; `at` the key it was found under when not the request's own. */
interface Found {
  node?: ClusterNode;
  stale: boolean;
  at?: string;
}
const NOT_FOUND: Found = { stale: false };
/** No node to avoid (shared: never written to). */
const AVOID_NONE: ReadonlySet<ClusterNode> = new Set();

/** Harbor's UI login: a 2xx to it makes the browser's session one a node vouched for. */
const LOGIN_PATHS = new Set(['/c/login', '/login']);

export type { SessionEvidence } from './session-evidence.js';

/** Pin lookups by kind and what they found (a usable pin, none, or a stale one), for /metrics. */
export type PinLookups = Readonly<Record<PinKind, { hit: number; miss: number; stale: number }>>;

/**
 * Which node a request belongs to: the one entry point of stickiness. `begin(facts)` reads the
 * request's pin and returns its Placement, which chooses each attempt's node and learns from the
 * answers (an upload's POST, a login's session); pins are written only from such evidence.
 * Pins live in the pin store, so several harbor-lb instances agree; without a pin, rendezvous
 * hashing gives every instance the same answer even before the store does (or while it is down).
 * Token requests avoid nodes whose clock is past the registries' leeway (`tokensAway`).
 */
export class Pins implements PinWriter {
  #kinds: ReadonlySet<PinKind>;
  readonly #keys: PinKeys;
  /** Visitor pins each address wrote lately, oldest first (bounded: the addresses seen lately). */
  readonly #visitorPins = new LRUCache<string, string[]>({ max: 10_000 });
  readonly lookups: PinLookups = {
    upload: { hit: 0, miss: 0, stale: 0 },
    session: { hit: 0, miss: 0, stale: 0 },
    client: { hit: 0, miss: 0, stale: 0 },
  };

  constructor(
    private readonly store: PinStore,
    private readonly nodes: NodeSet,
    private cfg: Config['sticky'],
    private fallback: Selector,
    private readonly tokensAway: (node: ClusterNode) => boolean = () => false,
  ) {
    this.#kinds = new Set(cfg.keys);
    this.#keys = new PinKeys(this.#kinds);
  }

  /** New TTLs, kinds and load factor from a config reload; pins already written keep their TTL until renewed. */
  configure(cfg: Config['sticky']): void {
    this.cfg = cfg;
    this.#kinds = new Set(cfg.keys);
    this.#keys.configure(this.#kinds);
  }

  /** A new balancing policy from a config reload; requests under way keep the one they began with. */
  setFallback(fallback: Selector): void {
    this.fallback = fallback;
  }

  has(kind: PinKind): boolean {
    return this.#kinds.has(kind);
  }

  /** Starts placing one request: its pin key and pin (asynchronous only when the store has to be asked). */
  begin(facts: PinFacts): Awaitable<Placement> {
    const key = this.#keys.keyOf(facts);
    const place = (pin: Found): Placement => {
      // Writes go where the pin was found (a visitor's session cookie stays a visitor pin).
      const at = key !== undefined && pin.at !== undefined ? { ...key, key: pin.at } : key;
      return new Placement(this, this.fallback, facts, at, pin.node, pin.stale, this.#avoid(facts));
    };
    return key === undefined ? place(NOT_FOUND) : andThen(this.#lookup(key, facts.route), place);
  }

  /** Token requests avoid nodes whose tokens the other registries refuse (clock), while there are others. */
  #avoid(facts: PinFacts): ReadonlySet<ClusterNode> {
    if (facts.route !== 'token') return AVOID_NONE;
    const available = this.nodes.available();
    const away = available.filter((n) => this.tokensAway(n));
    return away.length > 0 && away.length < available.length ? new Set(away) : AVOID_NONE;
  }

  /**
   * The pinned node if it may take this request; `stale` when a pin exists but its node may not
   * (it is then replaced, never kept: a stale pin must not hold a client on a dead node). Reading
   * a pin renews it, so an upload or session that outlasts its TTL while in use keeps its node.
   */
  #lookup(k: PinKey, route: Route): Awaitable<Found> {
    const anonymous = k.kind === 'client' && k.vouched !== true && k.basicUser === undefined;
    const ttl = this.#ttl(k.kind);
    return andThen(this.store.get(k.key, ttl, anonymous), (name) => {
      const visitorKey = k.visitorKey;
      if (name !== undefined || visitorKey === undefined) return this.#found(k, route, name, k.key);
      // None under the key itself: a visitor's pin may hold it (writes then go there too).
      return andThen(this.store.get(visitorKey, ttl), (v) => this.#found(k, route, v, visitorKey));
    });
  }

  /** What the pin `name` read under `at` means for this request. */
  #found(k: PinKey, route: Route, name: string | undefined, at: string): Found {
    const counts = this.lookups[k.kind];
    if (name === undefined) {
      counts.miss++;
      return NOT_FOUND;
    }
    const node = this.nodes.get(name);
    // `at`: the pin was found under the visitor key, where writes to it go too.
    const where = at === k.key ? {} : { at };
    // Uploads and sessions already on a draining node finish there; new clients go elsewhere.
    if (node && (this.nodes.availableFor(route).includes(node) || (node.state === 'draining' && k.kind !== 'client'))) {
      counts.hit++;
      return { node, stale: false, ...where };
    }
    counts.stale++;
    return { stale: true, ...where };
  }

  /** A node for a key without a usable pin: rendezvous order, bounded load for new clients. */
  hashed(k: PinKey, candidates: readonly ClusterNode[]): ClusterNode | undefined {
    const order = rendezvousOrder(k.key, candidates);
    return k.kind === 'client' ? boundedLoadPick(order, this.cfg.loadFactor) : order[0];
  }

  /** Records a first choice; another instance's earlier pin wins (set-if-absent). `owner`: who it is for (pinOwner). */
  claim(k: PinKey, node: ClusterNode, owner?: string): void {
    void this.store.setIfAbsent(k.key, node.name, this.#ttl(k.kind), owner);
  }

  /** Moves a pin (the pinned node could not serve, or the node told us: an upload POST, a new session). */
  pin(k: PinKey, node: ClusterNode, owner?: string): Promise<void> {
    // Never rejects: a store that fails costs the pin, not the request.
    return this.store.set(k.key, node.name, this.#ttl(k.kind), owner).catch(() => {});
  }

  /**
   * Learns an upload's id from the answer to its POST; the promise settles once the pin is stored
   * (undefined: nothing to store).
   */
  learnUpload(node: ClusterNode, headers: readonly string[], owner: string): Promise<void> | undefined {
    if (!this.#kinds.has('upload')) return undefined;
    let uuid: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (name === 'docker-upload-uuid') uuid = headers[i + 1];
      else if (name === 'location' && uuid === undefined) uuid = uploadOfLocation(headers[i + 1]!);
    }
    if (uuid !== undefined && uuid.length > 0 && uuid.length <= 128) return this.pin({ kind: 'upload', key: `upload:${uuid}` }, node, owner);
    return undefined;
  }

  /**
   * Learns a UI session from the node's answer, so it stays on the node that holds it. Only a
   * login the node accepted makes a session pin: Harbor hands a session cookie (and core a CSRF
   * cookie) to any anonymous visitor, and such cookies go to the visitor space, at most
   * VISITOR_PINS_PER_ADDRESS per address, so no flood of anonymous visits can push out a
   * signed-in session's pin, nor one address's flood another visitor's. The promise settles once
   * a signed-in session's pin is stored (undefined: none to store).
   */
  learnSession(node: ClusterNode, headers: readonly string[], e: SessionEvidence): Promise<void> | undefined {
    if (!this.#kinds.has('session')) return undefined;
    const stored: Promise<void>[] = [];
    const login = e.method === 'POST' && LOGIN_PATHS.has(e.path) && e.status >= 200 && e.status < 300;
    let setSession = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() !== 'set-cookie') continue;
      const m = /^\s*(sid|beegosessionID|_gorilla_csrf)=([^;]+)/.exec(headers[i + 1]!);
      if (!m || m[2]!.length > 512) continue;
      const isSession = m[1] !== '_gorilla_csrf';
      setSession ||= isSession;
      if (isSession && login) stored.push(this.pin({ kind: 'session', key: `session:${digest(m[2]!)}` }, node, addressOwner(e.clientIp)));
      else this.#pinVisitor(e.clientIp, `visitor:${digest(m[2]!)}`, node);
    }
    // A login that kept the visitor's session cookie signs that session in.
    if (login && !setSession && e.requestSession?.kind === 'session') stored.push(this.pin({ kind: 'session', key: `session:${digest(e.requestSession.value)}` }, node, addressOwner(e.clientIp)));
    return stored.length === 0 ? undefined : Promise.all(stored).then(() => {});
  }

  #pinVisitor(ip: string, key: string, node: ClusterNode): void {
    let mine = this.#visitorPins.get(ip);
    if (mine === undefined) this.#visitorPins.set(ip, (mine = []));
    this.pin({ kind: 'session', key }, node);
    mine.push(key);
    if (mine.length > VISITOR_PINS_PER_ADDRESS) void this.store.delete(mine.shift()!);
  }

  #ttl(kind: PinKind): number {
    return this.cfg.ttl[kind];
  }
}
