import type { Config } from '../config/schema.js';
import { checkNodeCas } from '../nodes/node-tls.js';
import { csrfOutliers, type CsrfRequest } from '../token/csrf-check.js';
import { TrustStore } from '../token/trust-store.js';
import { TokenVerifier } from '../token/verifier.js';
import { createSystemClock } from '../util/clock.js';
import { createDoctorClient } from './doctor-client.js';
import { inspectNode, type NodeReport } from './node-inspection.js';
import { Problems, type Problem } from './problems.js';
import { trustMatrix, type TrustMatrix } from './trust-matrix.js';
import { uploadCheck } from './upload-check.js';

export type { NodeReport } from './node-inspection.js';
export type { Problem } from './problems.js';

export interface DoctorReport {
  trustedKids: string[];
  nodes: NodeReport[];
  /** trust[a][b]: node b's registry accepted a token node a issued (null: not tested). */
  trust: TrustMatrix;
  uploadCheck: 'skipped' | 'done';
  problems: Problem[];
}

/**
 * One look at the cluster, serving no traffic: each node by itself (health, clock, token, realm),
 * then the nodes against each other (CSRF keys, cross-trust, and with credentials the upload
 * check). Findings are worded by the catalogue harbor-lb's own flags use.
 */
export async function diagnose(config: Config): Promise<DoctorReport> {
  checkNodeCas(config);
  const client = createDoctorClient(config);
  const problems = new Problems();
  const trust = config.token.rootCert ? TrustStore.fromFile(config.token.rootCert) : undefined;
  const verifier = trust ? new TokenVerifier(trust, { issuer: config.token.issuer, audience: config.token.service, leeway: config.token.leeway }, createSystemClock()) : undefined;
  if (!trust) problems.add(null, 'NO_ROOT_CERT', {});
  try {
    const inspected = await Promise.all(config.nodes.map((n) => inspectNode(config, n, client.request, verifier, problems)));
    const reports = inspected.map((i) => i.report);
    const tokens = new Map(inspected.flatMap((i) => (i.token === undefined ? [] : [[i.report.name, i.token] as const])));
    await csrfCheck(config, reports, client, problems);
    const matrix = await trustMatrix(config, reports, tokens, client.request, problems, trust !== undefined);
    const uploaded = await uploadCheck(config, reports, matrix, client.request, problems);
    return { trustedKids: trust?.kids ?? [], nodes: reports, trust: matrix, uploadCheck: uploaded ? 'done' : 'skipped', problems: problems.list };
  } finally {
    await client.close();
  }
}

/** CSRF keys: a cookie and token one node minted, presented to another on a harmless POST. */
async function csrfCheck(config: Config, reports: readonly NodeReport[], client: ReturnType<typeof createDoctorClient>, problems: Problems): Promise<void> {
  const csrfRequest: CsrfRequest = async (origin, r) => {
    const res = await client.agent.request({ origin, path: r.path, method: r.method, headers: { ...client.baseHeaders, ...r.headers } });
    await res.body.dump();
    return { status: res.statusCode, headers: res.headers };
  };
  const reachable = config.nodes.filter((n) => reports.find((r) => r.name === n.name)?.reachable).map((n) => ({ name: n.name, origin: new URL(n.url).origin }));
  for (const o of await csrfOutliers(csrfRequest, reachable)) problems.add(o.name, 'CSRF_KEY_DIFFERS', { node: o.name, differsFrom: o.differsFrom });
}
