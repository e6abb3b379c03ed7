import type { Config } from '../config/schema.js';
import { refusesToken } from '../token/challenge.js';
import type { DoctorRequest } from './doctor-client.js';
import type { NodeReport } from './node-inspection.js';
import type { Problems } from './problems.js';

/** trust[a][b]: node b's registry accepted a token node a issued (null: not tested). */
export type TrustMatrix = Record<string, Record<string, boolean | null>>;

/**
 * The cross-trust matrix: every node's token presented to every node's registry. A registry that
 * refuses the token of every node issuing good ones trusts another root.crt; no good issuer at all
 * makes token.rootCert the suspect.
 */
export async function trustMatrix(
  config: Config,
  reports: readonly NodeReport[],
  tokens: ReadonlyMap<string, string>,
  request: DoctorRequest,
  problems: Problems,
  rootCertSet: boolean,
): Promise<TrustMatrix> {
  const matrix: TrustMatrix = {};
  for (const a of config.nodes) {
    matrix[a.name] = {};
    const token = tokens.get(a.name);
    for (const b of config.nodes) matrix[a.name]![b.name] = token === undefined || !reportOf(reports, b.name).reachable ? null : await accepts(request, b.url, token);
  }
  const goodIssuers = reports.filter((r) => r.token.verdict === 'good').map((r) => r.name);
  for (const b of reports) {
    if (goodIssuers.length > 0 && goodIssuers.every((a) => matrix[a]![b.name] === false)) problems.add(b.name, 'REGISTRY_REJECTS_CLUSTER_TOKEN', { node: b.name });
  }
  if (rootCertSet && goodIssuers.length === 0 && reports.some((r) => r.token.verdict === 'bad')) problems.add(null, 'ROOT_CERT_SUSPECT', {});
  return matrix;
}

async function accepts(request: DoctorRequest, url: string, token: string): Promise<boolean | null> {
  try {
    const v = await request(new URL(url).origin, '/v2/', { authorization: `Bearer ${token}` });
    return !refusesToken(v.status, v.header('www-authenticate'));
  } catch {
    return null;
  }
}

export function reportOf(reports: readonly NodeReport[], name: string): NodeReport {
  return reports.find((r) => r.name === name)!;
}
