import type { Config, NodeConfig } from '../config/schema.js';
import { offsetFromDate } from '../health/clock-skew.js';
import { judgeHealth } from '../health/verdict.js';
import { realmOf, realmSchemeMismatch, sameOrigin } from '../token/realm.js';
import type { TokenVerifier } from '../token/verifier.js';
import type { DoctorRequest } from './doctor-client.js';
import type { Problems } from './problems.js';

export interface NodeReport {
  name: string;
  url: string;
  reachable: boolean;
  health: string;
  token: { verdict: 'good' | 'bad' | 'unchecked' | 'none'; kid?: string; detail?: string };
  realm?: string;
  realmBypasses?: boolean;
  /** The node's clock minus this machine's, from its Date header (±0.5 s), when it sent one. */
  clockOffsetMs?: number;
}

/** One node looked at by itself: its health and clock, the token it issues, the realm it advertises. */
export async function inspectNode(
  config: Config,
  n: NodeConfig,
  request: DoctorRequest,
  verifier: TokenVerifier | undefined,
  problems: Problems,
): Promise<{ report: NodeReport; token?: string }> {
  const origin = new URL(n.url).origin;
  const report: NodeReport = { name: n.name, url: n.url, reachable: false, health: 'unknown', token: { verdict: 'none' } };
  try {
    await checkHealthAndClock(config, n, origin, request, report, problems);
  } catch (err) {
    const detail = (err as { code?: string }).code ?? (err as Error).message;
    report.health = `unreachable: ${detail}`;
    problems.add(n.name, 'NODE_UNREACHABLE', { node: n.name, url: n.url, detail });
    return { report };
  }
  const token = await checkToken(config, n, origin, request, verifier, report, problems);
  await checkRealm(config, n, origin, request, report, problems);
  return { report, token };
}

async function checkHealthAndClock(config: Config, n: NodeConfig, origin: string, request: DoctorRequest, report: NodeReport, problems: Problems): Promise<void> {
  const sent = Date.now();
  const h = await request(origin, config.health.path, { accept: 'application/json' });
  const answered = Date.now();
  report.reachable = true;
  const offset = offsetFromDate(h.header('date'), sent, answered);
  if (offset !== undefined) {
    report.clockOffsetMs = Math.round(offset);
    const off = Math.abs(report.clockOffsetMs);
    if (off > config.health.maxClockSkew) {
      problems.add(n.name, 'NODE_CLOCK_SKEW', { node: n.name, offsetMs: report.clockOffsetMs, tokensAway: off > config.token.leeway, observer: 'this machine' });
    }
  }
  const v = judgeHealth(config.health.path, h.status, h.header('content-type'), h.text, config.health.requiredComponents);
  report.health = v.ok ? 'healthy' : `unhealthy: ${v.detail}`;
  if (!v.ok) problems.add(n.name, 'NODE_UNHEALTHY', { node: n.name, detail: v.detail });
}

/** The anonymous token the node issues (as the trust probe asks for it), verified; returned for the trust matrix. */
async function checkToken(
  config: Config,
  n: NodeConfig,
  origin: string,
  request: DoctorRequest,
  verifier: TokenVerifier | undefined,
  report: NodeReport,
  problems: Problems,
): Promise<string | undefined> {
  let token: string | undefined;
  try {
    const q = new URLSearchParams({ service: config.token.service, scope: `repository:${config.token.probe.repository}:pull` });
    const t = await request(origin, `/service/token?${q.toString()}`);
    token = t.status === 200 ? (JSON.parse(t.text) as { token?: string }).token : undefined;
    if (token === undefined) {
      report.token = { verdict: 'none', detail: `token service answered ${t.status}` };
      return undefined;
    }
  } catch (err) {
    report.token = { verdict: 'none', detail: (err as Error).message };
    return undefined;
  }
  if (verifier === undefined) {
    report.token = { verdict: 'unchecked' };
    return token;
  }
  const v = await verifier.verify(token);
  report.token = v.ok ? { verdict: 'good', kid: v.kid } : { verdict: 'bad', kid: v.kid, detail: v.detail };
  if (v.ok) return token;
  if (v.problem === 'NOT_YET_VALID' || v.problem === 'EXPIRED') {
    // Already named by its Date header: the token's time claims are the same clock, now an error.
    const clock = problems.find(n.name, 'NODE_CLOCK_SKEW');
    if (clock) clock.severity = 'error';
    else problems.add(n.name, 'NODE_CLOCK_SKEW', { node: n.name, tokensAway: true, detail: v.detail, observer: 'this machine' });
  } else if (v.problem === 'FOREIGN_KEY' || v.problem === 'BAD_SIGNATURE') {
    problems.add(n.name, 'TOKEN_SIGNED_WITH_FOREIGN_KEY', { node: n.name, kid: v.kid, trustedKids: verifier.trustedKids });
  } else {
    problems.add(n.name, 'TOKEN_CLAIMS_REJECTED', { node: n.name, detail: v.detail, timeClaims: false });
  }
  return token;
}

async function checkRealm(config: Config, n: NodeConfig, origin: string, request: DoctorRequest, report: NodeReport, problems: Problems): Promise<void> {
  try {
    const c = await request(origin, '/v2/');
    const realm = realmOf(c.header('www-authenticate'));
    report.realm = realm;
    report.realmBypasses = realm !== undefined && config.nodes.some((m) => sameOrigin(realm, m.url));
    if (realm === undefined) return;
    if (realmSchemeMismatch(realm, config.publicUrl)) problems.add(n.name, 'REALM_SCHEME_MISMATCH', { node: n.name, realm, publicUrl: config.publicUrl });
    if (report.realmBypasses) problems.add(n.name, 'REALM_BYPASSES_PROXY', { node: n.name, realm, publicUrl: config.publicUrl });
  } catch {
    /* reported by the health step */
  }
}
