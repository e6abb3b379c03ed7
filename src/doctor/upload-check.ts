import type { Config } from '../config/schema.js';
import type { DoctorRequest } from './doctor-client.js';
import type { NodeReport } from './node-inspection.js';
import type { Problems } from './problems.js';
import type { TrustMatrix } from './trust-matrix.js';
import { checkUploadSecrets } from '../health/upload-secrets.js';

/**
 * With doctor.credentials: an upload begun on one node whose tokens every registry accepts,
 * continued on each other node (health/upload-secrets.ts, the check the live probe runs too).
 * Returns whether it ran.
 */
export async function uploadCheck(config: Config, reports: readonly NodeReport[], matrix: TrustMatrix, request: DoctorRequest, problems: Problems): Promise<boolean> {
  const creds = config.doctor.credentials;
  const home = reports.find((r) => r.token.verdict === 'good' && reports.every((o) => matrix[r.name]![o.name] !== false));
  if (creds === undefined || home === undefined) return false;
  const originOf = (name: string) => new URL(config.nodes.find((n) => n.name === name)!.url).origin;
  const others = reports.filter((r) => r.name !== home.name && r.reachable && matrix[home.name]![r.name] !== false);
  const result = await checkUploadSecrets({
    home: { name: home.name, origin: originOf(home.name) },
    others: others.map((r) => ({ name: r.name, origin: originOf(r.name) })),
    credentials: creds,
    repository: config.doctor.repository,
    service: config.token.service,
    request,
  });
  if (result.token === 'refused') {
    problems.add(home.name, 'DOCTOR_CREDENTIALS_REJECTED', { node: home.name, status: result.status, username: creds.username, repository: config.doctor.repository });
    return true;
  }
  for (const [name, differs] of result.differs) if (differs === true) problems.add(name, 'HTTP_SECRET_DIFFERS', { node: name, startedOn: home.name });
  return true;
}
