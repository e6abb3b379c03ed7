import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Route } from '../registry/route.js';
import { uploadOf } from '../registry/upload-path.js';

/** What a pin keeps on one node: an upload, a UI session, a client. */
export type PinKind = 'upload' | 'session' | 'client';

/**
 * `basic`: the name a client sent with Basic auth (the node checks the password). `token`: the
 * `sub` of a bearer token that verified against token.rootCert. `unverified-token`: the `sub` of
 * a bearer token not verified (yet): anyone can write any name into a token.
 */
export type UserSource = 'basic' | 'token' | 'unverified-token';

/** The cookie a request's UI affinity is read from: a session, or before login the CSRF cookie. */
export interface SessionCookie {
  kind: 'session' | 'csrf';
  /** The cookie's value: a secret, never logged (pin keys hash it). */
  value: string;
}

/** What the request path knows of a request that pins are decided from. */
export interface PinFacts {
  route: Route;
  method: string;
  /** The normalized path (what the node receives). */
  path: string;
  clientIp: string;
  user?: string;
  userFrom?: UserSource;
  /** The session or CSRF cookie as the node reads it (credentials.ts). */
  session?: SessionCookie;
}

export interface PinKey {
  kind: PinKind;
  /** The store key: never a secret in clear (session ids are hashed). */
  key: string;
  /**
   * For a client key: its identity was vouched for already (the `sub` of a bearer token that
   * verified), so a pin may be written for it. A name sent with Basic auth is vouched for only
   * once a node issued that user a good token (see Placement.answered); anonymous never.
   */
  vouched?: boolean;
  /** For a client key: the user name sent with Basic auth, which a good token may vouch for. */
  basicUser?: string;
  /** For a session cookie: where its pin is while no login has made it a session (visitor space). */
  visitorKey?: string;
}

/** A secret (a session id) or a client's name made into a store key's tail. */
export const digest = (s: string) => hash('sha256', s, 'base64url').slice(0, 22);

/**
 * The pin key of a request, in this order: the upload it continues, the UI session it carries,
 * the client (address and vouched user) it comes from; undefined when no configured kind applies.
 */
export class PinKeys {
  /** Address|user → store key; neither is a secret, so they may be kept as they are. */
  readonly #clientKeys = new LRUCache<string, string>({ max: 10_000 });

  constructor(private kinds: ReadonlySet<PinKind>) {}

  configure(kinds: ReadonlySet<PinKind>): void {
    this.kinds = kinds;
  }

  keyOf(f: PinFacts): PinKey | undefined {
    const uploadId = f.route === 'upload' ? uploadOf(f.path)?.uuid : undefined;
    if (uploadId !== undefined && this.kinds.has('upload')) return { kind: 'upload', key: `upload:${uploadId}` };
    if (f.session !== undefined && this.kinds.has('session')) {
      const d = digest(f.session.value);
      // A session cookie is a signed-in session's pin, or while nobody logged in with it, a visitor's.
      return f.session.kind === 'session' ? { kind: 'session', key: `session:${d}`, visitorKey: `visitor:${d}` } : { kind: 'session', key: `visitor:${d}` };
    }
    if (!this.kinds.has('client') || f.clientIp === '') return undefined;
    // A token's name nobody verified is no identity: such a client is its address alone.
    const name = f.userFrom === 'basic' || f.userFrom === 'token' ? (f.user ?? '') : '';
    // Hashed once per client, not per request: a client sends many requests.
    const id = `${f.clientIp}|${name}`;
    let key = this.#clientKeys.get(id);
    if (key === undefined) {
      key = `client:${digest(id)}`;
      this.#clientKeys.set(id, key);
    }
    return f.userFrom === 'basic' ? { kind: 'client', key, basicUser: name } : { kind: 'client', key, vouched: name !== '' };
  }
}
