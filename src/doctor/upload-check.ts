import type { Config } from '../config/schema.js';
import type { DoctorRequest } from './doctor-client.js';
import type { NodeReport } from './node-inspection.js';
import type { Problems } from './problems.js';
import type { TrustMatrix } from './trust-matrix.js';

/**
 * With doctor.credentials: an upload begun on one node whose tokens every registry accepts,
 * continued on each other node. A 404 BLOB_UPLOAD_INVALID says their registries' http.secret
 * differ (uploads then fail whenever their requests change node). Returns whether it ran.
 */
export async function uploadCheck(config: Config, reports: readonly NodeReport[], matrix: TrustMatrix, request: DoctorRequest, problems: Problems): Promise<boolean> {
  const creds = config.doctor.credentials;
  const home = reports.find((r) => r.token.verdict === 'good' && reports.every((o) => matrix[r.name]![o.name] !== false));
  if (creds === undefined || home === undefined) return false;
  const repo = config.doctor.repository;
  const originOf = (name: string) => new URL(config.nodes.find((n) => n.name === name)!.url).origin;
  const homeOrigin = originOf(home.name);
  const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
  const q = new URLSearchParams({ service: config.token.service, scope: `repository:${repo}:pull,push` });
  const t = await request(homeOrigin, `/service/token?${q.toString()}`, { authorization: basic });
  const pushToken = t.status === 200 ? (JSON.parse(t.text) as { token?: string }).token : undefined;
  if (pushToken === undefined) {
    problems.add(home.name, 'DOCTOR_CREDENTIALS_REJECTED', { node: home.name, status: t.status, username: creds.username, repository: repo });
    return true;
  }
  const auth = { authorization: `Bearer ${pushToken}` };
  for (const other of reports.filter((r) => r.name !== home.name && r.reachable && matrix[home.name]![r.name] !== false)) {
    const started = await request(homeOrigin, `/v2/${repo}/blobs/uploads/`, auth, 'POST');
    const location = started.header('location');
    if (started.status !== 202 || !location) continue;
    const target = new URL(location, homeOrigin);
    const path = target.pathname + target.search;
    const patch = await request(originOf(other.name), path, { ...auth, 'content-type': 'application/octet-stream' }, 'PATCH', Buffer.from('x'));
    if (patch.status === 404 && /BLOB_UPLOAD_INVALID/.test(patch.text)) problems.add(other.name, 'HTTP_SECRET_DIFFERS', { node: other.name, startedOn: home.name });
    await request(homeOrigin, path, auth, 'DELETE').catch(() => undefined);
  }
  return true;
}
