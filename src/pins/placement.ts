import type { Selector } from '../balance/selector.js';
import type { ClusterNode } from '../nodes/node.js';
import { uploadOf } from '../registry/upload-path.js';
import type { PinFacts, PinKey } from './pin-key.js';
import type { SessionEvidence } from './session-evidence.js';
import { pinOwner } from './pin-owners.js';

/** What a placement asks of the pins it came from (Pins is the one). */
export interface PinWriter {
  hashed(k: PinKey, candidates: readonly ClusterNode[]): ClusterNode | undefined;
  claim(k: PinKey, node: ClusterNode, owner?: string): void;
  pin(k: PinKey, node: ClusterNode, owner?: string): Promise<void>;
  learnUpload(node: ClusterNode, headers: readonly string[], owner: string): Promise<void> | undefined;
  learnSession(node: ClusterNode, headers: readonly string[], e: SessionEvidence): Promise<void> | undefined;
}

/** How the first node of a request was found. */
export type ChoiceReason = 'pinned' | 'hashed' | 'balanced';

/**
 * One request's place: the node of each attempt (its pin, else its key's rendezvous choice, else
 * and for every retry the balancing selector: Caddy's and Traefik's sticky-wraps-fallback shape),
 * and what the nodes' answers teach (an upload begun, a session started, an identity vouched
 * for). Choosing writes nothing; pins are written only from answers.
 */
export class Placement {
  readonly first: ChoiceReason;
  /** The routing line's `affinity`: which kind of pin applies. */
  readonly kind: PinKey['kind'] | 'none';
  /**
   * An upload continues on its own node or not at all (another node may not know it), and a
   * pinned UI session stays with its node: such a request waits for that node's connections
   * rather than go elsewhere for them.
   */
  readonly mustStay: boolean;
  #attempts = 0;

  constructor(
    private readonly pins: PinWriter,
    private readonly fallback: Selector,
    private readonly facts: PinFacts,
    private readonly key: PinKey | undefined,
    private readonly pinned: ClusterNode | undefined,
    private readonly stale: boolean,
    /** Nodes this request should not go to while another can take it (token requests: a skewed clock). */
    readonly avoid: ReadonlySet<ClusterNode>,
  ) {
    this.first = pinned ? 'pinned' : key ? 'hashed' : 'balanced';
    this.kind = key?.kind ?? 'none';
    this.mustStay = (key?.kind === 'upload') || (key?.kind === 'session' && pinned !== undefined);
  }

  /**
   * The node for the next attempt, from `available` minus the nodes in `tried`; undefined when
   * none is left.
   */
  next(available: readonly ClusterNode[], tried: ReadonlySet<ClusterNode>): ClusterNode | undefined {
    const first = ++this.#attempts === 1;
    if (first && this.pinned && !tried.has(this.pinned)) return this.pinned;
    if (this.key === undefined || !first) return this.fallback.select(available, tried);
    return this.pins.hashed(this.key, tried.size === 0 ? available : available.filter((n) => !tried.has(n)));
  }

  /**
   * Sees the head of a node's answer before the client does: an upload begun, a session started.
   * For an upload begun or a login, the promise settles once the pin is stored: the client must not
   * learn the upload's location or its session before then, or its next request, on another worker
   * or instance, may find no pin (and go to a node that does not know the upload or the session).
   */
  observe(node: ClusterNode, status: number, headers: readonly string[]): Promise<void> | undefined {
    const f = this.facts;
    if (f.route === 'upload' && f.method === 'POST' && status === 202 && uploadOf(f.path)?.uuid === undefined) return this.pins.learnUpload(node, headers, pinOwner(f));
    if (f.route === 'ui') return this.pins.learnSession(node, headers, { clientIp: f.clientIp, method: f.method, path: f.path, status, requestSession: f.session });
    return undefined;
  }

  /**
   * `node` answered `status`. Pins come from evidence, so this writes the key's pin only when
   * the answer is some: a 2xx to a request of that upload (the node knows it); for a session, only
   * moving a pin it had (sessions are pinned from a login the node accepted, never from a cookie a
   * client made up); for a client, only an identity vouched for (a verified token's subject, or
   * `vouched`: the node's token service accepted the Basic user's login in this very answer: a
   * good token issued to that user, or without token checks its 200).
   * A new key's pin is claimed (the first writer among instances wins); one that moved is replaced.
   */
  answered(node: ClusterNode, status: number, vouched = false): void {
    const { pins, key } = this;
    if (key === undefined || node === this.pinned || status < 200 || status >= 300) return;
    const hadPin = this.pinned !== undefined || this.stale;
    if (key.kind === 'session' && !hadPin) return;
    // Anonymous is no identity: only a name sent with Basic auth can be vouched for by an answer.
    if (key.kind === 'client' && key.vouched !== true && !(vouched && key.basicUser !== undefined && key.basicUser !== '')) return;
    // Upload and session pins say whose they are, so a full space never pushes out another client's for them.
    const owner = key.kind === 'upload' || key.kind === 'session' ? pinOwner(this.facts) : undefined;
    if (hadPin) pins.pin(key, node, owner);
    else pins.claim(key, node, owner);
  }

  /** The Basic user this request's client pin waits to have vouched for, if any. */
  get basicUser(): string | undefined {
    return this.key?.basicUser;
  }
}
