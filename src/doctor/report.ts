import { formatTable } from '../util/table.js';
import type { DoctorReport } from './diagnose.js';

const short = (kid?: string) => (kid ? `${kid.slice(0, 14)}…` : '');

/** The report as a person reads it: a table per node, the cross-trust matrix, each problem with its fix. */
export function formatDoctorReport(r: DoctorReport): string {
  const out: string[] = [];
  out.push(`harbor-lb doctor: ${r.nodes.length} nodes; token.rootCert kids: ${r.trustedKids.join(', ') || '(none)'}`, '');
  const rows = r.nodes.map((n) => [
    n.name,
    n.reachable ? 'yes' : 'NO',
    n.health,
    n.token.verdict === 'good' ? `good ${short(n.token.kid)}` : n.token.verdict === 'bad' ? `BAD ${short(n.token.kid)}` : n.token.verdict,
    n.realm === undefined ? '-' : n.realmBypasses ? 'node address' : 'public',
  ]);
  out.push(...formatTable(['NODE', 'REACHABLE', 'HEALTH', 'TOKEN', 'REALM'], rows), '');
  const names = r.nodes.map((n) => n.name);
  out.push('token issued by (row) accepted by registry of (column):');
  out.push(...formatTable(['', ...names], names.map((a) => [a, ...names.map((b) => (r.trust[a]![b] === null ? '-' : r.trust[a]![b] ? 'yes' : 'NO'))])), '');
  out.push(`upload check (http.secret): ${r.uploadCheck === 'done' ? 'done' : 'skipped (set doctor.credentials to run it)'}`, '');
  const errors = r.problems.filter((p) => p.severity === 'error');
  if (r.problems.length === 0) out.push('no problems found');
  const ordered = [...r.problems].sort((a, b) => (a.severity === b.severity ? (a.node ?? '').localeCompare(b.node ?? '') : a.severity === 'error' ? -1 : 1));
  for (const p of ordered) {
    out.push(`${p.severity === 'error' ? 'PROBLEM' : 'warning'} ${p.code}${p.node ? ` on ${p.node}` : ''}: ${p.message}`, `  fix: ${p.fix}`);
  }
  out.push('', errors.length === 0 ? 'result: OK' : `result: ${errors.length} problem(s)`);
  return out.join('\n');
}
