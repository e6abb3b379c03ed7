import type { Logger } from '../log.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeConditions, QuarantineSetter } from '../nodes/conditions.js';
import type { Clock } from '../util/clock.js';
import type { TrustStore } from './trust-store.js';
import type { TokenVerdict, TokenVerifier } from './verifier.js';

export const FLAG_FOREIGN_KEY = 'TOKEN_SIGNED_WITH_FOREIGN_KEY';
export const FLAG_TOKEN_CLAIMS = 'TOKEN_CLAIMS_REJECTED';
export const FLAG_REGISTRY_REJECTS = 'REGISTRY_REJECTS_CLUSTER_TOKEN';
export const FLAG_REALM = 'REALM_BYPASSES_PROXY';
const QUARANTINING = [FLAG_FOREIGN_KEY, FLAG_TOKEN_CLAIMS, FLAG_REGISTRY_REJECTS];

const FIX_KEYS =
  "copy private_key.pem and root.crt from a good node to this node (Harbor: common/config/core/private_key.pem and common/config/registry/root.crt, or the values in harbor.yml's secret folder), then restart Harbor on it";

/** The node set as the guard sees it: it asks for quarantines and reads who has asked. */
export type GuardNodes = QuarantineSetter & { readonly all: readonly ClusterNode[]; conditionsOf(node: ClusterNode): NodeConditions };

export type TokenResponseVerdict = 'good' | 'bad' | 'not-a-token';

/** Counts of verdicts per node, for /metrics. */
export interface VerdictCounts {
  good: number;
  bad: number;
  registryRejected: number;
}

/**
 * What harbor-lb does with what it learns about tokens: flags a node whose tokens do not verify
 * against the cluster's root.crt, or whose registry rejects tokens that do, and quarantines it
 * (no traffic of any kind) while at least one other node is known to issue good tokens.
 * If no node issues a good token, the proxy's own rootCert is the likelier error: it says so once
 * and fails open rather than take the whole cluster down.
 */
export class TokenGuard {
  /** Nodes whose most recent token verified. */
  readonly #goodIssuers = new Set<ClusterNode>();
  readonly #badIssuers = new Set<ClusterNode>();
  readonly counts = new Map<ClusterNode, VerdictCounts>();
  #suspectSaid = false;

  constructor(
    private readonly nodes: GuardNodes,
    readonly verifier: TokenVerifier,
    private readonly trust: TrustStore,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    for (const n of nodes.all) this.counts.set(n, { good: 0, bad: 0, registryRejected: 0 });
  }

  /** Reads a 200 from /service/token: verifies `token` and a non-empty `access_token`. */
  async judgeTokenResponse(node: ClusterNode, body: Buffer, source: 'traffic' | 'probe'): Promise<{ verdict: TokenResponseVerdict; token?: string; detail?: string }> {
    let doc: { token?: unknown; access_token?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      return { verdict: 'not-a-token' };
    }
    const tokens = [doc.token, doc.access_token].filter((t): t is string => typeof t === 'string' && t.length > 0);
    if (tokens.length === 0) return { verdict: 'not-a-token' };
    for (const t of new Set(tokens)) {
      const v = await this.verifier.verify(t);
      if (!v.ok) {
        this.#issuerBad(node, v, source);
        return { verdict: 'bad', detail: v.detail };
      }
    }
    this.#issuerGood(node);
    return { verdict: 'good', token: tokens[0] };
  }

  /** A node answered 401 invalid_token; `token` is the bearer token the client presented. Returns whether the node is to blame. */
  async judgeRejection(node: ClusterNode, token: string | undefined, source: 'traffic' | 'probe'): Promise<boolean> {
    if (token === undefined) return false;
    const v = await this.verifier.verify(token);
    // A token that does not verify is the client's problem (say, one a misconfigured node issued): not this node's.
    if (!v.ok) return false;
    this.counts.get(node)!.registryRejected++;
    this.#raise(
      node,
      FLAG_REGISTRY_REJECTS,
      `${node.name}'s registry rejects tokens signed with the cluster key ${v.kid} (answers 401 invalid_token)`,
      { kid: v.kid, trustedKids: this.trust.kids, source },
      `the registry on ${node.name} trusts another root.crt: ${FIX_KEYS}`,
    );
    this.#quarantine(node);
    return true;
  }

  /** The trust probe found the node issuing good tokens and its registry accepting them. */
  probePassed(node: ClusterNode): void {
    for (const code of QUARANTINING) this.#clear(node, code);
    this.nodes.release(node);
  }

  realmBypasses(node: ClusterNode, realm: string): void {
    this.#raise(
      node,
      FLAG_REALM,
      `${node.name} advertises the token realm ${realm}, which points at the node itself, not at the public URL (harbor-lb rewrites it meanwhile)`,
      { realm },
      `set hostname / external_url in ${node.name}'s harbor.yml to the public name (the domain name, not the node's IP) and run ./prepare`,
    );
  }

  realmOk(node: ClusterNode): void {
    this.#clear(node, FLAG_REALM);
  }

  #issuerGood(node: ClusterNode): void {
    this.counts.get(node)!.good++;
    this.#goodIssuers.add(node);
    this.#badIssuers.delete(node);
    // Nodes flagged while nobody was known good can be sidelined now.
    for (const n of this.nodes.all) if (!this.#asked(n) && QUARANTINING.some((c) => n.flags.has(c))) this.#quarantine(n);
  }

  #issuerBad(node: ClusterNode, v: Extract<TokenVerdict, { ok: false }>, source: string): void {
    this.counts.get(node)!.bad++;
    this.#goodIssuers.delete(node);
    this.#badIssuers.add(node);
    const keyProblem = v.problem === 'FOREIGN_KEY' || v.problem === 'BAD_SIGNATURE';
    const code = keyProblem ? FLAG_FOREIGN_KEY : FLAG_TOKEN_CLAIMS;
    this.#raise(
      node,
      code,
      keyProblem
        ? `${node.name} issues tokens signed with ${v.kid ? `key ${v.kid}` : 'an unknown key'}; the cluster's root.crt holds ${this.trust.kids.join(', ')}`
        : `${node.name} issues tokens the cluster's registries reject: ${v.detail}`,
      { problem: v.problem, kid: v.kid, trustedKids: this.trust.kids, detail: v.detail, source },
      keyProblem ? FIX_KEYS : v.problem === 'NOT_YET_VALID' || v.problem === 'EXPIRED' ? `sync ${node.name}'s clock (NTP)` : `check token issuer and service settings on ${node.name}`,
    );
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
    const alternative = this.nodes.all.some((n) => n !== node && !this.#asked(n) && this.#goodIssuers.has(n));
    if (!alternative) {
      if (this.#badIssuers.size === this.nodes.all.length && !this.#suspectSaid) {
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

  #raise(node: ClusterNode, code: string, message: string, evidence: Record<string, unknown>, fix: string): void {
    if (node.flags.has(code)) return;
    node.flags.set(code, { code, message, since: new Date(this.clock.now()).toISOString() });
    this.logger.warn({ event: 'node_flag', node: node.name, code, raised: true, evidence, fix }, `${code}: ${message}. Fix: ${fix}`);
  }

  #clear(node: ClusterNode, code: string): void {
    if (!node.flags.delete(code)) return;
    this.logger.info({ event: 'node_flag', node: node.name, code, raised: false }, `${code} cleared on ${node.name}`);
  }
}
