import { Agent, Pool, type Dispatcher } from 'undici';
import type { Config } from '../config/schema.js';
import { judgeHealth } from '../health/verdict.js';
import { checkNodeCas, nodeTlsOptions } from '../nodes/node-tls.js';
import { describeOffset, offsetFromDate } from '../health/clock-skew.js';
import { csrfOutliers, FIX_CSRF, type CsrfRequest } from '../token/csrf-check.js';
import { publicHostHeaders, realmOf, realmSchemeMismatch, sameOrigin } from '../token/realm.js';
import { TrustStore } from '../token/trust-store.js';
import { TokenVerifier, type TokenVerdict } from '../token/verifier.js';
import { createSystemClock } from '../util/clock.js';

export interface Problem {
  node: string | null;
  code: string;
  severity: 'error' | 'warning';
  message: string;
  fix: string;
}

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

export interface DoctorReport {
  trustedKids: string[];
  nodes: NodeReport[];
  /** trust[a][b]: node b's registry accepted a token node a issued (null: not tested). */
  trust: Record<string, Record<string, boolean | null>>;
  uploadCheck: 'skipped' | 'done';
  problems: Problem[];
}

const FIX_KEYS = 'copy private_key.pem and root.crt from a good node to this node, then restart Harbor on it';

/** One look at the cluster, serving no traffic. */
export async function diagnose(config: Config): Promise<DoctorReport> {
  const timeout = config.doctor.timeout;
  checkNodeCas(config);
  // One pool per origin, each with its node's private CA (if any), as the proxy's own pools have.
  const tlsOf = new Map(config.nodes.map((n) => [new URL(n.url).origin, nodeTlsOptions(n)]));
  const agent = new Agent({
    connectTimeout: timeout,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    connections: 4,
    factory: (origin, opts) => new Pool(origin, { ...opts, connect: tlsOf.get(new URL(String(origin)).origin) }),
  });
  const pub = new URL(config.publicUrl);
  const baseHeaders = publicHostHeaders(config.publicUrl, 'harbor-lb-doctor');
  const get = async (origin: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: Buffer) => {
    const res = await agent.request({ origin, path, method: method as Dispatcher.HttpMethod, headers: { ...baseHeaders, ...headers }, body });
    const text = await res.body.text();
    const h = (n: string) => {
      const v = res.headers[n];
      return Array.isArray(v) ? v[0] : v;
    };
    return { status: res.statusCode, text, header: h };
  };

  const problems: Problem[] = [];
  const trust = config.token.rootCert ? TrustStore.fromFile(config.token.rootCert) : undefined;
  const verifier = trust ? new TokenVerifier(trust, { issuer: config.token.issuer, audience: config.token.service, leeway: config.token.leeway }, createSystemClock()) : undefined;
  if (!trust) problems.push({ node: null, code: 'NO_ROOT_CERT', severity: 'warning', message: 'token.rootCert is not set: tokens cannot be checked', fix: "set token.rootCert to the cluster's root.crt" });

  const tokens = new Map<string, string>();
  const reports: NodeReport[] = await Promise.all(
    config.nodes.map(async (n) => {
      const origin = new URL(n.url).origin;
      const r: NodeReport = { name: n.name, url: n.url, reachable: false, health: 'unknown', token: { verdict: 'none' } };
      try {
        const sent = Date.now();
        const h = await get(origin, config.health.path, { accept: 'application/json' });
        const answered = Date.now();
        r.reachable = true;
        const offset = offsetFromDate(h.header('date'), sent, answered);
        if (offset !== undefined) {
          r.clockOffsetMs = Math.round(offset);
          const off = Math.abs(r.clockOffsetMs);
          if (off > config.health.maxClockSkew) {
            problems.push({
              node: n.name,
              code: 'NODE_CLOCK_SKEW',
              // Past the registries' leeway its tokens are refused elsewhere; before that, a warning.
              severity: off > config.token.leeway ? 'error' : 'warning',
              message: `${n.name}'s clock is ${describeOffset(r.clockOffsetMs)} this machine's${off > config.token.leeway ? ': its tokens are rejected as not valid yet (or expired) by the other nodes' : ''}`,
              fix: `sync ${n.name}'s clock (NTP: chrony or systemd-timesyncd); if every node shows the same offset, this machine's clock is the one off`,
            });
          }
        }
        const v = judgeHealth(config.health.path, h.status, h.header('content-type'), h.text, config.health.requiredComponents);
        r.health = v.ok ? 'healthy' : `unhealthy: ${v.detail}`;
        if (!v.ok) problems.push({ node: n.name, code: 'NODE_UNHEALTHY', severity: 'error', message: `${n.name} health: ${v.detail}`, fix: `look at the failing component on ${n.name}` });
      } catch (err) {
        r.health = `unreachable: ${(err as { code?: string }).code ?? (err as Error).message}`;
        problems.push({ node: n.name, code: 'NODE_UNREACHABLE', severity: 'error', message: `${n.name} (${n.url}) cannot be reached: ${r.health.slice(13)}`, fix: `is Harbor running on ${n.name}, and is ${n.url} right?` });
        return r;
      }
      try {
        const q = new URLSearchParams({ service: config.token.service, scope: `repository:${config.token.probe.repository}:pull` });
        const t = await get(origin, `/service/token?${q.toString()}`);
        const token = t.status === 200 ? (JSON.parse(t.text) as { token?: string }).token : undefined;
        if (token) {
          tokens.set(n.name, token);
          if (verifier) {
            const v: TokenVerdict = await verifier.verify(token);
            r.token = v.ok ? { verdict: 'good', kid: v.kid } : { verdict: 'bad', kid: v.kid, detail: v.detail };
            const timeProblem = !v.ok && (v.problem === 'NOT_YET_VALID' || v.problem === 'EXPIRED');
            if (timeProblem && problems.some((p) => p.node === n.name && p.code === 'NODE_CLOCK_SKEW')) {
              // Already named by its Date header: the token's time claims are the same clock.
              const clock = problems.find((p) => p.node === n.name && p.code === 'NODE_CLOCK_SKEW')!;
              clock.severity = 'error';
            } else if (timeProblem) {
              problems.push({ node: n.name, code: 'NODE_CLOCK_SKEW', severity: 'error', message: `${n.name} issues tokens that are ${v.detail}`, fix: `sync ${n.name}'s clock (NTP)` });
            } else if (!v.ok) {
              const keyProblem = v.problem === 'FOREIGN_KEY' || v.problem === 'BAD_SIGNATURE';
              problems.push({
                node: n.name,
                code: keyProblem ? 'TOKEN_SIGNED_WITH_FOREIGN_KEY' : 'TOKEN_CLAIMS_REJECTED',
                severity: 'error',
                message: `${n.name} issues tokens that do not verify: ${v.detail}`,
                fix: keyProblem ? FIX_KEYS : `check ${n.name}'s clock and token settings`,
              });
            }
          } else r.token = { verdict: 'unchecked' };
        } else r.token = { verdict: 'none', detail: `token service answered ${t.status}` };
      } catch (err) {
        r.token = { verdict: 'none', detail: (err as Error).message };
      }
      try {
        const c = await get(origin, '/v2/');
        r.realm = realmOf(c.header('www-authenticate'));
        r.realmBypasses = r.realm !== undefined && config.nodes.some((m) => sameOrigin(r.realm!, m.url));
        if (r.realm !== undefined && realmSchemeMismatch(r.realm, config.publicUrl)) {
          problems.push({
            node: n.name,
            code: 'REALM_SCHEME_MISMATCH',
            severity: 'warning',
            message: `${n.name} advertises the realm ${r.realm}, but clients use ${pub.protocol.slice(0, -1)} (harbor-lb rewrites it; docker following it directly fails: "server gave HTTP response to HTTPS client")`,
            fix: `set external_url in ${n.name}'s harbor.yml to ${pub.origin} and run ./prepare`,
          });
        }
        if (r.realmBypasses) {
          problems.push({ node: n.name, code: 'REALM_BYPASSES_PROXY', severity: 'warning', message: `${n.name} advertises the realm ${r.realm} (the node itself); harbor-lb rewrites it`, fix: `set ${n.name}'s hostname / external_url to the public name ${pub.host}` });
        }
      } catch {
        /* reported by the health step */
      }
      return r;
    }),
  );

  // CSRF keys: a cookie and token one node minted, presented to another on a harmless POST.
  const csrfRequest: CsrfRequest = async (origin, r) => {
    const res = await agent.request({ origin, path: r.path, method: r.method, headers: { ...baseHeaders, ...r.headers } });
    await res.body.dump();
    return { status: res.statusCode, headers: res.headers };
  };
  const reachable = config.nodes.filter((n) => reports.find((r) => r.name === n.name)?.reachable).map((n) => ({ name: n.name, origin: new URL(n.url).origin }));
  for (const o of await csrfOutliers(csrfRequest, reachable)) {
    problems.push({
      node: o.name,
      code: 'CSRF_KEY_DIFFERS',
      severity: 'error',
      message: `${o.name}'s CSRF key differs from ${o.differsFrom.join(', ')}'s: a UI session that changes node fails with 403 "CSRF token invalid" (harbor-lb keeps browsers on one node meanwhile)`,
      fix: FIX_CSRF,
    });
  }

  // Cross-trust: is the token node A issued accepted by node B's registry?
  const matrix: DoctorReport['trust'] = {};
  for (const a of config.nodes) {
    matrix[a.name] = {};
    const token = tokens.get(a.name);
    for (const b of config.nodes) {
      if (token === undefined || !reports.find((r) => r.name === b.name)!.reachable) {
        matrix[a.name]![b.name] = null;
        continue;
      }
      try {
        const v = await get(new URL(b.url).origin, '/v2/', { authorization: `Bearer ${token}` });
        matrix[a.name]![b.name] = !(v.status === 401 && /invalid_token/.test(v.header('www-authenticate') ?? ''));
      } catch {
        matrix[a.name]![b.name] = null;
      }
    }
  }
  const goodIssuers = reports.filter((r) => r.token.verdict === 'good').map((r) => r.name);
  for (const b of reports) {
    if (goodIssuers.length > 0 && goodIssuers.every((a) => matrix[a]![b.name] === false)) {
      problems.push({ node: b.name, code: 'REGISTRY_REJECTS_CLUSTER_TOKEN', severity: 'error', message: `${b.name}'s registry rejects tokens signed with the cluster key`, fix: FIX_KEYS });
    }
  }
  if (trust && goodIssuers.length === 0 && reports.some((r) => r.token.verdict === 'bad')) {
    problems.push({ node: null, code: 'ROOT_CERT_SUSPECT', severity: 'error', message: "no node's token verifies against token.rootCert", fix: "token.rootCert is likelier wrong than every node: copy root.crt from a Harbor node" });
  }

  let uploadCheck: DoctorReport['uploadCheck'] = 'skipped';
  const creds = config.doctor.credentials;
  const home = reports.find((r) => r.token.verdict === 'good' && reports.every((o) => matrix[r.name]![o.name] !== false));
  if (creds && home) {
    uploadCheck = 'done';
    const repo = config.doctor.repository;
    const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const homeOrigin = new URL(config.nodes.find((n) => n.name === home.name)!.url).origin;
    const q = new URLSearchParams({ service: config.token.service, scope: `repository:${repo}:pull,push` });
    const t = await get(homeOrigin, `/service/token?${q.toString()}`, { authorization: basic });
    const pushToken = t.status === 200 ? (JSON.parse(t.text) as { token?: string }).token : undefined;
    if (!pushToken) {
      problems.push({ node: home.name, code: 'DOCTOR_CREDENTIALS_REJECTED', severity: 'warning', message: `doctor.credentials got no push token from ${home.name} (${t.status})`, fix: `give ${creds.username} push rights on ${repo}` });
    } else {
      const auth = { authorization: `Bearer ${pushToken}` };
      for (const other of reports.filter((r) => r.name !== home.name && r.reachable && matrix[home.name]![r.name] !== false)) {
        const started = await get(homeOrigin, `/v2/${repo}/blobs/uploads/`, auth, 'POST');
        const location = started.header('location');
        if (started.status !== 202 || !location) continue;
        const target = new URL(location, homeOrigin);
        const patch = await get(new URL(config.nodes.find((n) => n.name === other.name)!.url).origin, target.pathname + target.search, { ...auth, 'content-type': 'application/octet-stream' }, 'PATCH', Buffer.from('x'));
        if (patch.status === 404 && /BLOB_UPLOAD_INVALID/.test(patch.text)) {
          problems.push({
            node: other.name,
            code: 'HTTP_SECRET_DIFFERS',
            severity: 'error',
            message: `an upload started on ${home.name} cannot continue on ${other.name}: their registries' http.secret differ`,
            fix: `give every node the same registry http.secret (REGISTRY_HTTP_SECRET); harbor-lb keeps uploads on one node meanwhile`,
          });
        }
        await get(homeOrigin, target.pathname + target.search, auth, 'DELETE').catch(() => undefined);
      }
    }
  }
  await agent.close();
  return { trustedKids: trust?.kids ?? [], nodes: reports, trust: matrix, uploadCheck, problems };
}
