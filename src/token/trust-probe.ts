import { Pool, type Dispatcher } from 'undici';
import type { ClusterNode } from '../nodes/node.js';
import { nodeFailure } from '../nodes/node-failure.js';
import type { NodeSlot, NodeSlots } from '../nodes/node-slot.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { RecheckTrigger } from '../util/recheck-trigger.js';
import { refusesToken } from './challenge.js';
import { csrfOutliers, type CsrfRequest } from './csrf-check.js';
import { publicHostHeaders, realmOf, sameOrigin } from './realm.js';
import type { TokenGuard, TokenResponseVerdict } from './token-guard.js';

export interface TrustProbeOptions {
  service: string;
  repository: string;
  interval: number;
  timeout: number;
  /** The public URL: probes carry its Host, as client traffic does, so Harbor 2.x builds realms from it. */
  publicUrl: () => string;
}

/** One node's answers in a probe round. */
export interface NodeProbeResult {
  node: ClusterNode;
  reachable: boolean;
  /** The anonymous token the node issued, when it verified. */
  goodToken?: string;
  tokenVerdict?: TokenResponseVerdict;
  tokenDetail?: string;
  /** Whether the node's registry accepted a good cluster token at /v2/. */
  registryAccepts?: boolean;
  realm?: string;
  realmBypasses?: boolean;
}

/** A node that client traffic made suspect is probed at once, then at most once per this. */
export const SUSPECT_PROBE_SPACING_MS = 1000;
/** A good token is used for registry checks until this long before it expires. */
const GOOD_TOKEN_MARGIN_MS = 60_000;

/**
 * The active trust probe, the only source of token-trust flags: asks each node's token service
 * for an anonymous token (with the configured service and scope) and verifies it, then presents a
 * good token to each node's /v2/ and checks it is not rejected as invalid_token, and reads the
 * realm the node advertises. A quarantined node leaves quarantine only when its own token verifies
 * and its registry accepts the cluster's tokens. It runs every `interval` (periodic rounds, unless
 * turned off) and at once for a node that client traffic made suspect (`suspect`, rate-limited).
 */
export class TrustProbe {
  /** A connection pool of its own per node; a node that leaves takes its pool and owed probe with it. */
  readonly #pools: NodeSlot<Pool>;
  readonly #suspects: RecheckTrigger<ClusterNode>;
  /** The last good token a probe got from any node, for registry checks of the others. */
  #good: { token: string; until: number } | undefined;
  #timer: Timer | undefined;
  #stopped = true;

  constructor(
    private readonly members: NodeSlots & { readonly all: readonly ClusterNode[] },
    private readonly guard: TokenGuard,
    private readonly opts: TrustProbeOptions,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.#suspects = new RecheckTrigger(clock, SUSPECT_PROBE_SPACING_MS, (node) => this.#probeIfMember(node));
    this.#pools = members.slot(
      (node) => new Pool(node.origin, { connections: 2, connectTimeout: this.opts.timeout, connect: node.tls, allowH2: false }),
      (pool, node) => {
        this.#suspects.forget(node);
        void pool.destroy();
      },
    );
  }

  /** Client traffic points at the node: probe it now (at most once per SUSPECT_PROBE_SPACING_MS). */
  suspect(node: ClusterNode): void {
    if (!this.#stopped) this.#suspects.request(node);
  }

  async #probeIfMember(node: ClusterNode): Promise<void> {
    if (!this.#stopped && this.members.all.includes(node)) await this.probeNode(node);
  }

  /** Takes suspicions from now on; with `periodic`, probes every node now and every `interval`. */
  start({ periodic }: { periodic: boolean } = { periodic: true }): void {
    this.#stopped = false;
    if (periodic) void this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#suspects.stop();
    if (this.#timer) this.clock.clearTimeout(this.#timer);
    this.#pools.clear();
  }

  async #loop(): Promise<void> {
    await this.round();
    if (this.#stopped) return;
    this.#timer = this.clock.setTimeout(() => void this.#loop(), this.opts.interval * (0.9 + 0.2 * this.random()));
    this.#timer.unref?.();
  }

  /** One probe of every node; applies the verdicts and returns what was seen (doctor prints it). */
  async round(): Promise<NodeProbeResult[]> {
    const nodes = this.members.all;
    const results = await Promise.all(nodes.map((n) => this.#tokenOf(n)));
    const anyGood = results.find((r) => r.goodToken !== undefined)?.goodToken;
    await Promise.all(results.map((r) => this.#registryAndRealm(r, r.goodToken ?? anyGood)));
    if (!this.#stopped) for (const r of results) if (r.goodToken !== undefined && r.registryAccepts === true) this.guard.probePassed(r.node);
    const reachable = results.filter((r) => r.reachable).map((r) => r.node);
    if (!this.#stopped && reachable.length > 1) {
      const outliers = await csrfOutliers(this.#csrfRequest, reachable);
      if (!this.#stopped) this.guard.csrfKeys(reachable, outliers);
    }
    return results;
  }

  /**
   * The probe of one node: its token, then its registry with a good token (its own, else the
   * last good one a probe got, else one asked of another node now) and its realm.
   */
  async probeNode(node: ClusterNode): Promise<NodeProbeResult> {
    const r = await this.#tokenOf(node);
    const token = r.goodToken ?? this.#goodToken() ?? (await this.#goodTokenFromOthers(node));
    await this.#registryAndRealm(r, token);
    if (!this.#stopped && r.goodToken !== undefined && r.registryAccepts === true) this.guard.probePassed(node);
    return r;
  }

  #goodToken(): string | undefined {
    return this.#good !== undefined && this.#good.until > this.clock.now() ? this.#good.token : undefined;
  }

  async #goodTokenFromOthers(except: ClusterNode): Promise<string | undefined> {
    for (const other of this.members.all) {
      if (other === except || this.#stopped) continue;
      const r = await this.#tokenOf(other);
      if (r.goodToken !== undefined) return r.goodToken;
    }
    return undefined;
  }

  /** Presents `token` to the node's registry and reads the realm of its challenge. */
  async #registryAndRealm(r: NodeProbeResult, token: string | undefined): Promise<void> {
    if (!r.reachable || this.#stopped) return;
    const nodes = this.members.all;
    const challenge = await this.#v2(r.node, undefined);
    if (challenge) {
      r.realm = realmOf(challenge.authenticate);
      if (r.realm !== undefined) {
        r.realmBypasses = nodes.some((n) => sameOrigin(r.realm!, n.origin));
        if (r.realmBypasses) this.guard.realmBypasses(r.node, r.realm, this.opts.publicUrl());
        else this.guard.realmOk(r.node);
        this.guard.realmScheme(r.node, r.realm, this.opts.publicUrl());
      }
    }
    if (token === undefined) return;
    const answer = await this.#v2(r.node, token);
    if (answer === undefined) return;
    const rejected = refusesToken(answer.status, answer.authenticate);
    r.registryAccepts = !rejected;
    if (rejected) await this.guard.judgeRejection(r.node, token, 'probe');
  }

  async #tokenOf(node: ClusterNode): Promise<NodeProbeResult> {
    const query = new URLSearchParams({ service: this.opts.service, scope: `repository:${this.opts.repository}:pull` });
    try {
      const res = await this.#request(node, {
        path: `/service/token?${query.toString()}`,
        headers: this.#headers(),
        headersTimeout: this.opts.timeout,
        bodyTimeout: this.opts.timeout,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200) return { node, reachable: true, tokenDetail: `token service answered ${res.statusCode}` };
      const judged = await this.guard.judgeTokenResponse(node, body, 'probe');
      if (judged.token !== undefined && judged.expiresAt !== undefined) this.#good = { token: judged.token, until: judged.expiresAt - GOOD_TOKEN_MARGIN_MS };
      return { node, reachable: true, goodToken: judged.token, tokenVerdict: judged.verdict, tokenDetail: judged.detail };
    } catch (err) {
      return { node, reachable: false, tokenDetail: (err as { code?: string }).code ?? (err as Error).message };
    }
  }

  async #v2(node: ClusterNode, token: string | undefined): Promise<{ status: number; authenticate?: string } | undefined> {
    try {
      const res = await this.#request(node, {
        path: '/v2/',
        headers: token ? { ...this.#headers(), authorization: `Bearer ${token}` } : this.#headers(),
        headersTimeout: this.opts.timeout,
        bodyTimeout: this.opts.timeout,
      });
      await res.body.dump();
      const a = res.headers['www-authenticate'];
      return { status: res.statusCode, authenticate: Array.isArray(a) ? a[0] : a };
    } catch {
      return undefined;
    }
  }

  /** One GET, sent again once if a kept-alive connection turns out dead (the node restarted since the last round). */
  async #request(node: ClusterNode, opts: Omit<Dispatcher.RequestOptions, 'method'>): Promise<Dispatcher.ResponseData> {
    const pool = this.#pools.get(node);
    try {
      return await pool.request({ ...opts, method: 'GET' });
    } catch (err) {
      if (!nodeFailure(err as Error).staleConnection) throw err;
      return pool.request({ ...opts, method: 'GET' });
    }
  }

  #csrfCheckedAt = -Infinity;

  /**
   * A UI request was refused 403 while it carried a CSRF cookie: perhaps minted on a node with
   * another key. That is no evidence by itself (a client can send any cookie); it asks for the
   * CSRF check now, at most once per 10 s, and the check's own answers decide.
   */
  csrfSuspected(): void {
    const now = this.clock.now();
    if (this.#stopped || now - this.#csrfCheckedAt < 10_000) return;
    this.#csrfCheckedAt = now;
    const nodes = this.members.all;
    void csrfOutliers(this.#csrfRequest, nodes).then((outliers) => {
      if (!this.#stopped) this.guard.csrfKeys(nodes, outliers);
    });
  }

  readonly #csrfRequest: CsrfRequest = async (origin, r) => {
    const node = this.members.all.find((n) => n.origin === origin)!;
    const res = await this.#pools.get(node).request({
      path: r.path,
      method: r.method,
      headers: { ...this.#headers(), ...r.headers },
      headersTimeout: this.opts.timeout,
      bodyTimeout: this.opts.timeout,
    });
    await res.body.dump();
    return { status: res.statusCode, headers: res.headers };
  };

  #headers(): Record<string, string> {
    return publicHostHeaders(this.opts.publicUrl(), 'harbor-lb-trust-probe');
  }
}
