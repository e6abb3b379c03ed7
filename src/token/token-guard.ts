import type { Logger } from '../log/loggers.js';
import type { ClusterNode } from '../nodes/node.js';
import type { FlagSetter, NodeConditions, QuarantineSetter } from '../nodes/conditions.js';
import type { Clock } from '../util/clock.js';
import type { ClockSkew } from '../health/clock-skew.js';
import { NodeFlags } from '../nodes/node-flags.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import { FLAG_CSRF } from './csrf-check.js';
import { realmSchemeMismatch } from './realm.js';
import { LogRateLimit } from '../util/log-rate-limit.js';
import type { TrustStore } from './trust-store.js';
import { MAX_TOKEN_BYTES, type TokenVerdict, type TokenVerifier } from './verifier.js';

export const FLAG_FOREIGN_KEY = 'TOKEN_SIGNED_WITH_FOREIGN_KEY';
export const FLAG_TOKEN_CLAIMS = 'TOKEN_CLAIMS_REJECTED';
export const FLAG_REGISTRY_REJECTS = 'REGISTRY_REJECTS_CLUSTER_TOKEN';
export const FLAG_REALM = 'REALM_BYPASSES_PROXY';
export const FLAG_REALM_SCHEME = 'REALM_SCHEME_MISMATCH';
/** A refusal of a token this close to its expiry says nothing about the node's trust. */
const NEAR_EXPIRY_MS = 30_000;
const QUARANTINING = [FLAG_FOREIGN_KEY, FLAG_TOKEN_CLAIMS, FLAG_REGISTRY_REJECTS] as const;

/** The node set as the guard sees it: it asks for quarantines and reads who has asked. */
export type GuardNodes = QuarantineSetter & FlagSetter & NodeSlots & { readonly all: readonly ClusterNode[]; conditionsOf(node: ClusterNode): NodeConditions };

/** What the guard knows of one node's tokens. */
interface IssuerRecord {
  counts: VerdictCounts;
  /** Its most recent token verified (a good issuer), or did not (a bad one); neither before its first. */
  issues: 'good' | 'bad' | undefined;
}

/**
 * `not-verified`: a token response passed to the client unchecked (too large to hold or verify,
 * or compressed). Says nothing about the node: never a flag.
 */
export type TokenResponseVerdict = 'good' | 'bad' | 'not-a-token' | 'not-verified';

/** Why a token response went to the client unverified. */
export type NotVerifiedReason = 'response-too-large' | 'response-encoded' | 'token-too-large';

/**
 * The most of a token response held for verification: the JSON carries the token twice (`token`
 * and `access_token`), each up to the verifier's 1 MiB, plus room for the rest of the JSON.
 */
export const MAX_TOKEN_RESPONSE_BYTES = 2 * MAX_TOKEN_BYTES + 64 * 1024;

/** One `token_not_verified` / `token_not_a_token` line per node per minute: clients can trigger them at will. */
const LOG_EVERY_MS = 60_000;

/** Counts of verdicts per node, for /metrics. */
export interface VerdictCounts {
  good: number;
  /** Tokens of the node's that harbor-lb's own probe found bad (the evidence behind a flag). */
  bad: number;
  /** Good cluster tokens the node's registry refused to harbor-lb's own probe. */
  registryRejected: number;
  /**
   * Evidence from client traffic (a bad token issued to a client, a good token refused): never a
   * flag by itself, it sends that request elsewhere and asks for a probe of the node.
   */
  suspected: number;
  /** Token responses passed to the client unverified (too large, compressed). */
  notVerified: number;
  /** 200 answers from the token service that carry no token (not JSON, `null`, an array, no `token`). */
  notAToken: number;
}

/** What the forwarder is told for one token response: how much to hold, whom to tell when it cannot. */
export interface TokenHold {
  maxBytes: number;
  unheld(reason: 'too-large' | 'encoded', detail: string): void;
}

/** Why client traffic made a node suspect: its token, or its registry's answer to one. */
export interface Suspicion {
  cause: 'token' | 'registry';
  detail: string;
}

/** Where the evidence came from: a client's request and its answer, or harbor-lb's own probe. */
export type EvidenceSource = 'traffic' | 'probe';

/** One `node_suspected` line per node and cause per minute: clients can make these at will. */
const SUSPECT_LOG_EVERY_MS = 60_000;

/**
 * What harbor-lb does with what it learns about tokens. Only its own probe (a request harbor-lb
 * builds, with the configured service and scope) convicts: it flags a node whose tokens do not
 * verify against the cluster's root.crt, or whose registry rejects tokens that do, and
 * quarantines it (no traffic of any kind) while at least one other node is known to issue good
 * tokens. The same evidence in client traffic is suspicion: that request goes elsewhere where it
 * safely can, and the node is probed at once (`onSuspect`), so a real fault is still caught within
 * the probe's round trip while no client can shape a flag. If no node issues a good token, the
 * proxy's own rootCert is the likelier error: it says so once and fails open rather than take the
 * whole cluster down.
 */
export class TokenGuard {
  readonly #issuers: NodeSlot<IssuerRecord>;
  readonly flags: NodeFlags;
  private readonly skew: ClockSkew | undefined;
  readonly #logLimit = new LogRateLimit(LOG_EVERY_MS);
  readonly #suspectLog = new LogRateLimit(SUSPECT_LOG_EVERY_MS);
  readonly #onSuspect: (node: ClusterNode, why: Suspicion) => void;
  /** Whether this process says `node_suspected` itself: not a request worker, whose control plane says it once for all. */
  readonly #says: boolean;
  readonly #onGoodIssuer: (node: ClusterNode) => void;
  #suspectSaid = false;

  constructor(
    private readonly nodes: GuardNodes,
    readonly verifier: TokenVerifier,
    private readonly trust: TrustStore,
    private readonly logger: Logger,
    private readonly clock: Clock,
    /**
     * Where flags are raised (shared with other evidence); the clock-skew monitor, when there is
     * one; whom to ask for a probe of a node that client traffic made suspect.
     */
    {
      flags,
      skew,
      onSuspect,
      onGoodIssuer,
      says = true,
    }: {
      flags?: NodeFlags;
      skew?: ClockSkew;
      onSuspect?: (node: ClusterNode, why: Suspicion) => void;
      says?: boolean;
      /** A client got a good token from the node (a request worker tells its control plane, whose quarantines need to know). */
      onGoodIssuer?: (node: ClusterNode) => void;
    } = {},
  ) {
    this.flags = flags ?? new NodeFlags(nodes, logger, clock);
    this.skew = skew;
    this.#onSuspect = onSuspect ?? (() => {});
    this.#says = says;
    this.#onGoodIssuer = onGoodIssuer ?? (() => {});
    this.#issuers = nodes.slot<IssuerRecord>(() => ({ counts: { good: 0, bad: 0, registryRejected: 0, suspected: 0, notVerified: 0, notAToken: 0 }, issues: undefined }));
  }

  /** A node's token verdict counters (metrics read them). */
  countsOf(node: ClusterNode): VerdictCounts {
    return this.#issuers.get(node).counts;
  }

  /**
   * Reads a 200 from /service/token: verifies `token` and a non-empty `access_token`. Never
   * throws: whatever the body is, the client gets the node's answer unless a token is bad. A bad
   * token in traffic makes the node suspect (probed at once); from the probe it is a flag.
   */
  async judgeTokenResponse(
    node: ClusterNode,
    body: Buffer,
    source: EvidenceSource,
  ): Promise<{ verdict: TokenResponseVerdict; token?: string; detail?: string; expiresAt?: number; subject?: string }> {
    const doc = jsonObjectOf(body);
    if (doc === undefined) return this.#notAToken(node, source, 'the body is not a JSON object');
    const tokens = [doc.token, doc.access_token].filter((t): t is string => typeof t === 'string' && t.length > 0);
    if (tokens.length === 0) return this.#notAToken(node, source, 'the JSON holds no token');
    if (tokens.some((t) => t.length > MAX_TOKEN_BYTES)) {
      const detail = `token of ${Math.max(...tokens.map((t) => t.length))} bytes, over the ${MAX_TOKEN_BYTES} verified`;
      this.notVerified(node, 'token-too-large', detail, source);
      return { verdict: 'not-verified', detail };
    }
    let expiresAt: number | undefined;
    let subject: string | undefined;
    for (const t of new Set(tokens)) {
      const v = await this.verifier.verify(t);
      if (!v.ok) {
        if (source === 'probe') this.#issuerBad(node, v);
        else this.#suspect(node, 'token', `it issued a client a token that does not verify: ${v.detail}`);
        return { verdict: 'bad', detail: v.detail };
      }
      expiresAt ??= v.expiresAt;
      subject ??= v.subject;
    }
    this.#issuerGood(node, source);
    return { verdict: 'good', token: tokens[0], expiresAt, subject };
  }

  /** How much of `node`'s token response the forwarder holds, and the hook for one it passes through unheld. */
  holdFor(node: ClusterNode): TokenHold {
    return {
      maxBytes: MAX_TOKEN_RESPONSE_BYTES,
      unheld: (reason, detail) => this.notVerified(node, reason === 'too-large' ? 'response-too-large' : 'response-encoded', detail, 'traffic'),
    };
  }

  /**
   * A token response went to the client unverified. Counted every time, logged at most once a
   * minute per node; never a flag, as what the client asked for shaped it.
   */
  notVerified(node: ClusterNode, reason: NotVerifiedReason, detail: string, source: EvidenceSource): void {
    this.countsOf(node).notVerified++;
    const held = this.#logLimit.take(`token_not_verified:${node.name}`, this.clock.now());
    if (held === undefined) return;
    this.logger.warn(
      { event: 'token_not_verified', node: node.name, reason, detail, source, notLogged: held },
      `a token response from ${node.name} went to the client unverified (${reason}: ${detail}); no flag is raised for it`,
    );
  }

  #notAToken(node: ClusterNode, source: EvidenceSource, detail: string): { verdict: 'not-a-token'; detail: string } {
    this.countsOf(node).notAToken++;
    const held = this.#logLimit.take(`token_not_a_token:${node.name}`, this.clock.now());
    if (held !== undefined) {
      this.logger.warn(
        { event: 'token_not_a_token', node: node.name, detail, source, notLogged: held },
        `${node.name}'s token service answered 200 without a token (${detail}); passed on as it is`,
      );
    }
    return { verdict: 'not-a-token', detail };
  }

  /**
   * A node answered 401 invalid_token to `token`. Returns whether the token verifies (and is not
   * about to expire), so that the refusal says something about the node and the request may go
   * to another node. From traffic that is suspicion (a probe of the node at once: the client's
   * header may have reached the node otherwise than harbor-lb read it); from the probe, whose
   * token and header harbor-lb made itself, it is a flag and a quarantine.
   */
  async judgeRejection(node: ClusterNode, token: string | undefined, source: EvidenceSource): Promise<boolean> {
    if (token === undefined) return false;
    const v = await this.verifier.verify(token);
    // A token that does not verify is the client's problem (say, one a misconfigured node issued): not this node's.
    if (!v.ok) return false;
    // Near its expiry a registry whose clock runs a little ahead may refuse a good token: no
    // evidence about its trust (and a client could send such tokens on purpose).
    if (v.expiresAt !== undefined && this.clock.now() > v.expiresAt - NEAR_EXPIRY_MS) return false;
    if (source === 'traffic') {
      this.#suspect(node, 'registry', 'its registry refused a client token that verifies against token.rootCert');
      return true;
    }
    this.countsOf(node).registryRejected++;
    this.flags.raise(node, FLAG_REGISTRY_REJECTS, { node: node.name, kid: v.kid }, { kid: v.kid, trustedKids: this.trust.kids, source });
    this.#quarantine(node);
    return true;
  }

  /** The trust probe found the node issuing good tokens and its registry accepting them. */
  probePassed(node: ClusterNode): void {
    for (const code of QUARANTINING) this.flags.clear(node, code);
    this.nodes.release(node);
  }

  realmBypasses(node: ClusterNode, realm: string, publicUrl: string): void {
    this.flags.raise(node, FLAG_REALM, { node: node.name, realm, publicUrl }, { realm });
  }

  realmOk(node: ClusterNode): void {
    this.flags.clear(node, FLAG_REALM);
  }

  /** What the CSRF check found among `checked`: the outliers flagged, every other node cleared. */
  csrfKeys(checked: readonly ClusterNode[], outliers: ReadonlyArray<{ name: string; differsFrom: string[] }>): void {
    for (const node of checked) {
      const o = outliers.find((x) => x.name === node.name);
      if (o === undefined) {
        this.flags.clear(node, FLAG_CSRF);
        continue;
      }
      this.flags.raise(node, FLAG_CSRF, { node: node.name, differsFrom: o.differsFrom }, { differsFrom: o.differsFrom, source: 'probe' });
    }
  }

  /** The realm names the public host with the other scheme (http behind TLS termination, harbor#3933). */
  realmScheme(node: ClusterNode, realm: string | undefined, publicUrl: string): void {
    if (realm === undefined || !realmSchemeMismatch(realm, publicUrl)) return this.flags.clear(node, FLAG_REALM_SCHEME);
    this.flags.raise(node, FLAG_REALM_SCHEME, { node: node.name, realm, publicUrl }, { realm, publicUrl });
  }

  /**
   * A request worker saw the node issue a client a good token: the control plane learns who issues
   * good tokens (which its quarantines wait for) as if it had seen the token itself; the counts are the worker's.
   */
  goodIssuerSeen(node: ClusterNode): void {
    this.#issuers.get(node).issues = 'good';
  }

  #issuerGood(node: ClusterNode, source: EvidenceSource): void {
    const r = this.#issuers.get(node);
    r.counts.good++;
    r.issues = 'good';
    if (source === 'traffic') this.#onGoodIssuer(node);
    // Nodes flagged while nobody was known good can be sidelined now: on the probe's word, so no
    // client's request chooses the moment a quarantine takes effect.
    if (source !== 'probe') return;
    for (const n of this.nodes.all) if (!this.#asked(n) && QUARANTINING.some((c) => n.flags.has(c))) this.#quarantine(n);
  }

  /**
   * Client traffic pointed at the node: counted, logged at most once a minute per node and cause,
   * and a probe asked for (the probe is rate-limited per node, so no client can make a storm of them).
   */
  #suspect(node: ClusterNode, cause: Suspicion['cause'], detail: string): void {
    this.countsOf(node).suspected++;
    this.#onSuspect(node, { cause, detail });
    if (this.#says) this.saySuspected(node, { cause, detail });
  }

  /**
   * The `node_suspected` line, at most one per node and cause per minute: said here for this
   * process's traffic, or by the control plane for what its request workers suspected.
   */
  saySuspected(node: ClusterNode, { cause, detail }: Suspicion): void {
    const held = this.#suspectLog.take(`${cause}:${node.name}`, this.clock.now());
    if (held === undefined) return;
    this.logger.info(
      { event: 'node_suspected', node: node.name, cause, detail, notLogged: held },
      `client traffic points at ${node.name} (${detail}); that request goes elsewhere where it can, and ${node.name} is probed now: only the probe raises a flag`,
    );
  }

  #issuerBad(node: ClusterNode, v: Extract<TokenVerdict, { ok: false }>): void {
    const source = 'probe';
    const r = this.#issuers.get(node);
    r.counts.bad++;
    r.issues = undefined;
    if ((v.problem === 'NOT_YET_VALID' || v.problem === 'EXPIRED') && v.issuedAt !== undefined && this.skew !== undefined) {
      // A token made "in the future" (or already expired) says the issuer's clock is off: that is
      // what gets named and handled (its token requests go elsewhere), not a key problem, and
      // the node keeps serving everything but tokens.
      this.skew.observe(node, v.issuedAt - this.clock.now(), 'token');
      return;
    }
    r.issues = 'bad';
    const keyProblem = v.problem === 'FOREIGN_KEY' || v.problem === 'BAD_SIGNATURE';
    const evidence = { problem: v.problem, kid: v.kid, trustedKids: this.trust.kids, detail: v.detail, source };
    if (keyProblem) this.flags.raise(node, FLAG_FOREIGN_KEY, { node: node.name, kid: v.kid, trustedKids: this.trust.kids }, evidence);
    else this.flags.raise(node, FLAG_TOKEN_CLAIMS, { node: node.name, detail: v.detail, timeClaims: v.problem === 'NOT_YET_VALID' || v.problem === 'EXPIRED' }, evidence);
    this.#quarantine(node);
  }

  #asked(node: ClusterNode): boolean {
    return this.nodes.conditionsOf(node).quarantine !== undefined;
  }

  /**
   * Asks for a quarantine only once another node, not quarantined itself, is known to issue good
   * tokens: so a wrong token.rootCert in harbor-lb's own config can never sideline the whole
   * cluster. Whether it is in force from moment to moment (another node can serve) is the node
   * set's rule.
   */
  #quarantine(node: ClusterNode): void {
    if (this.#asked(node)) return;
    const alternative = this.nodes.all.some((n) => n !== node && !this.#asked(n) && this.#issuers.peek(n)?.issues === 'good');
    if (!alternative) {
      if (this.nodes.all.every((n) => this.#issuers.peek(n)?.issues === 'bad') && !this.#suspectSaid) {
        this.#suspectSaid = true;
        this.logger.error(
          { event: 'token_trust_suspect', trustedKids: this.trust.kids },
          "no node issues tokens that verify against token.rootCert: harbor-lb's own rootCert is the likelier error (copy root.crt from a Harbor node); passing tokens through unchecked meanwhile",
        );
      }
      return;
    }
    const flags = QUARANTINING.filter((c) => node.flags.has(c)).join(', ');
    this.nodes.quarantine(node, `token trust: ${flags}`);
  }


}

/** The body as a JSON object, or undefined for anything else (invalid JSON, `null`, an array, a string, a number). */
function jsonObjectOf(body: Buffer): { token?: unknown; access_token?: unknown } | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as { token?: unknown; access_token?: unknown }) : undefined;
}
