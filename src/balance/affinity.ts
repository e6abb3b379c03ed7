import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { StateStore } from '../state/state-store.js';
import { uploadOfLocation } from '../registry/upload-path.js';
import { boundedLoadPick, rendezvousOrder } from './rendezvous.js';

export type AffinityKind = 'upload' | 'session' | 'client';

/**
 * `basic`: the name a client sent with Basic auth (the node checks the password). `token`: the
 * `sub` of a bearer token that verified against token.rootCert. `unverified-token`: the `sub` of
 * a bearer token not verified (yet): anyone can write any name into a token.
 */
export type UserSource = 'basic' | 'token' | 'unverified-token';

/** The cookie a request's UI affinity is read from: a session, or before login the CSRF cookie. */
export interface SessionCookie {
  kind: 'session' | 'csrf';
  /** The cookie's value: a secret, never logged (affinity keys hash it). */
  value: string;
}

export interface AffinityKey {
  kind: AffinityKind;
  /** The store key: never a secret in clear (session ids are hashed). */
  key: string;
  /**
   * For a client key: its identity was vouched for already (the `sub` of a bearer token that
   * verified), so a pin may be written for it. A name sent with Basic auth is vouched for only
   * once a node issued that user a good token (see NodeChoice.answered); anonymous never.
   */
  vouched?: boolean;
  /** For a client key: the user name sent with Basic auth, which a good token may vouch for. */
  basicUser?: string;
  /** For a session cookie: where its pin is while no login has made it a session (visitor space). */
  visitorKey?: string;
}

/** How many visitor pins one address keeps: a flood from it pushes out its own, not other visitors'. */
export const VISITOR_PINS_PER_ADDRESS = 32;

/** Harbor's UI login: a 2xx to it makes the browser's session one a node vouched for. */
const LOGIN_PATHS = new Set(['/c/login', '/login']);

/** What an answer tells about a UI session. */
export interface SessionEvidence {
  clientIp: string;
  method: string;
  path: string;
  status: number;
  /** The session cookie the request carried (a login may keep it rather than set a new one). */
  requestSession: SessionCookie | undefined;
}


const digest = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 22);

/**
 * Which node a request belongs to, in this order: the upload it continues, the UI session it
 * carries, the client (address and user) it comes from. Pins live in the state store, so several
 * harbor-lb instances agree; without a pin, rendezvous hashing gives every instance the same
 * answer even before the store does (or while it is down).
 */
export class Affinity {
  #kinds: ReadonlySet<AffinityKind>;
  /** Address|user → store key; neither is a secret, so they may be kept as they are. */
  readonly #clientKeys = new LRUCache<string, string>({ max: 10_000 });
  /** Visitor pins each address wrote lately, oldest first (bounded: the addresses seen lately). */
  readonly #visitorPins = new LRUCache<string, string[]>({ max: 10_000 });
  /** Pin lookups by key kind and what they found (a usable pin, none, or a stale one), for /metrics. */
  readonly lookups: Readonly<Record<AffinityKind, { hit: number; miss: number; stale: number }>> = {
    upload: { hit: 0, miss: 0, stale: 0 },
    session: { hit: 0, miss: 0, stale: 0 },
    client: { hit: 0, miss: 0, stale: 0 },
  };

  constructor(
    private readonly store: StateStore,
    private readonly nodes: NodeSet,
    private cfg: Config['sticky'],
  ) {
    this.#kinds = new Set(cfg.keys);
  }

  /** New TTLs, keys and load factor from a config reload; pins already written keep their TTL until renewed. */
  configure(cfg: Config['sticky']): void {
    this.cfg = cfg;
    this.#kinds = new Set(cfg.keys);
  }

  has(kind: AffinityKind): boolean {
    return this.#kinds.has(kind);
  }

  /**
   * The key of a request, or undefined when no configured kind applies. `session` is the UI
   * session cookie, or before login Harbor core's CSRF cookie (gorilla/csrf): a browser without a
   * session yet is kept on the node that minted it, so its login works even while nodes have
   * different CSRF keys.
   */
  keyOf(uploadId: string | undefined, session: SessionCookie | undefined, clientIp: string, user: string | undefined, userFrom?: UserSource): AffinityKey | undefined {
    if (uploadId !== undefined && this.#kinds.has('upload')) return { kind: 'upload', key: `upload:${uploadId}` };
    if (session !== undefined && this.#kinds.has('session')) {
      const d = digest(session.value);
      // A session cookie is a signed-in session's pin, or while nobody logged in with it, a visitor's.
      return session.kind === 'session' ? { kind: 'session', key: `session:${d}`, visitorKey: `visitor:${d}` } : { kind: 'session', key: `visitor:${d}` };
    }
    if (this.#kinds.has('client') && clientIp !== '') {
      // A token's name nobody verified is no identity: such a client is its address alone.
      const name = userFrom === 'basic' || userFrom === 'token' ? (user ?? '') : '';
      // Hashed once per client, not per request: a client sends many requests.
      const id = `${clientIp}|${name}`;
      let key = this.#clientKeys.get(id);
      if (key === undefined) {
        key = `client:${digest(id)}`;
        this.#clientKeys.set(id, key);
      }
      return userFrom === 'basic' ? { kind: 'client', key, basicUser: name } : { kind: 'client', key, vouched: name !== '' };
    }
    return undefined;
  }

  /**
   * The pinned node if it may take this request; `stale` when a pin exists but its node may not
   * (it is then replaced, never kept: a stale pin must not hold a client on a dead node). Reading
   * a pin renews it, so an upload or session that outlasts its TTL while in use keeps its node.
   */
  async lookup(k: AffinityKey): Promise<{ node?: ClusterNode; stale: boolean; at?: string }> {
    let at = k.key;
    let name = await this.store.get(at, this.#ttl(k.kind));
    if (name === undefined && k.visitorKey !== undefined) name = await this.store.get((at = k.visitorKey), this.#ttl(k.kind));
    const counts = this.lookups[k.kind];
    if (name === undefined) {
      counts.miss++;
      return { stale: false };
    }
    const node = this.nodes.get(name);
    // Uploads and sessions already on a draining node finish there; new clients go elsewhere.
    // `at`: the pin was found under the visitor key, where writes to it go too.
    const where = at === k.key ? {} : { at };
    if (node && (this.nodes.available().includes(node) || (node.state === 'draining' && k.kind !== 'client'))) {
      counts.hit++;
      return { node, stale: false, ...where };
    }
    counts.stale++;
    return { stale: true, ...where };
  }

  /** A node for a key without a usable pin: rendezvous order, bounded load for new clients. */
  hashed(k: AffinityKey, candidates: readonly ClusterNode[]): ClusterNode | undefined {
    const order = rendezvousOrder(k.key, candidates);
    return k.kind === 'client' ? boundedLoadPick(order, this.cfg.loadFactor) : order[0];
  }

  /** Records a first choice; another instance's earlier pin wins (set-if-absent). */
  claim(k: AffinityKey, node: ClusterNode): void {
    void this.store.setIfAbsent(k.key, node.name, this.#ttl(k.kind));
  }

  /** Moves a pin (the pinned node could not serve, or the node told us: an upload POST, a new session). */
  pin(k: AffinityKey, node: ClusterNode): void {
    void this.store.set(k.key, node.name, this.#ttl(k.kind));
  }

  /** Learns an upload's id from the answer to its POST. */
  learnUpload(node: ClusterNode, headers: readonly string[]): void {
    if (!this.#kinds.has('upload')) return;
    let uuid: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (name === 'docker-upload-uuid') uuid = headers[i + 1];
      else if (name === 'location' && uuid === undefined) uuid = uploadOfLocation(headers[i + 1]!);
    }
    if (uuid !== undefined && uuid.length > 0 && uuid.length <= 128) this.pin({ kind: 'upload', key: `upload:${uuid}` }, node);
  }

  /**
   * Learns a UI session from the node's answer, so it stays on the node that holds it. Only a
   * login the node accepted makes a session pin: Harbor hands a session cookie (and core a CSRF
   * cookie) to any anonymous visitor, and such cookies go to the visitor space, at most
   * VISITOR_PINS_PER_ADDRESS per address, so no flood of anonymous visits can push out a
   * signed-in session's pin, nor one address's flood another visitor's.
   */
  learnSession(node: ClusterNode, headers: readonly string[], e: SessionEvidence): void {
    if (!this.#kinds.has('session')) return;
    const login = e.method === 'POST' && LOGIN_PATHS.has(e.path) && e.status >= 200 && e.status < 300;
    let setSession = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() !== 'set-cookie') continue;
      const m = /^\s*(sid|beegosessionID|_gorilla_csrf)=([^;]+)/.exec(headers[i + 1]!);
      if (!m || m[2]!.length > 512) continue;
      const isSession = m[1] !== '_gorilla_csrf';
      setSession ||= isSession;
      if (isSession && login) this.pin({ kind: 'session', key: `session:${digest(m[2]!)}` }, node);
      else this.#pinVisitor(e.clientIp, `visitor:${digest(m[2]!)}`, node);
    }
    // A login that kept the visitor's session cookie signs that session in.
    if (login && !setSession && e.requestSession?.kind === 'session') this.pin({ kind: 'session', key: `session:${digest(e.requestSession.value)}` }, node);
  }

  #pinVisitor(ip: string, key: string, node: ClusterNode): void {
    let mine = this.#visitorPins.get(ip);
    if (mine === undefined) this.#visitorPins.set(ip, (mine = []));
    this.pin({ kind: 'session', key }, node);
    mine.push(key);
    if (mine.length > VISITOR_PINS_PER_ADDRESS) void this.store.delete(mine.shift()!);
  }

  #ttl(kind: AffinityKind): number {
    return this.cfg.ttl[kind];
  }
}
