import { formatTable } from '../util/table.js';
import type { StatusDocument } from './status.js';

/** `/-/status` as a table a person reads at a glance. */
export function formatStatusTable(doc: StatusDocument): string {
  const rows = doc.nodes.map((n) => [
    n.name,
    n.state,
    String(n.inflight),
    String(n.requests),
    String(n.failures),
    n.flags.map((f) => f.code).join(',') || '-',
    n.url,
  ]);
  const out = formatTable(['NODE', 'STATE', 'INFLIGHT', 'REQUESTS', 'FAILURES', 'FLAGS', 'URL'], rows);
  out.push('', `sticky store: ${doc.sticky.store} (${doc.sticky.connected ? 'connected' : 'NOT connected'})`);
  for (const n of doc.nodes) {
    if (n.state !== 'healthy') out.push(`${n.name} is ${n.state} since ${n.since}: ${n.why}`);
    for (const f of n.flags) out.push(`${n.name} ${f.code} since ${f.since}: ${f.message}`);
  }
  return out.join('\n');
}
