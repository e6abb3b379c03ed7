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
  const workers = doc.workers ?? [];
  if (workers.length > 1) {
    const mib = (b: number | null) => (b === null ? '?' : `${Math.round(b / 1048576)} MiB`);
    const each = workers.map((w) => `${w.index}: ${w.state}${w.stalled === true ? ' (stalled)' : ''}, ${w.requests} requests, ${w.connections === null ? '' : `${w.connections} connections, `}${mib(w.rssBytes)}${w.restarts > 0 ? `, restarted ${w.restarts}x` : ''}`);
    out.push(`workers: ${workers.length} (${each.join('; ')})`);
  }
  const cache = doc.cache;
  if (cache !== undefined) out.push(`blob cache: ${bytes(cache.size)} of ${bytes(cache.maxSize)}, ${cache.blobs} blob${cache.blobs === 1 ? '' : 's'} (${cache.dir})`);
  const c = doc.config;
  if (c !== undefined) {
    out.push(`config: generation ${c.generation}, loaded ${c.loadedAt}${c.lastReload?.ok === false ? `; last reload REFUSED at ${c.lastReload.at}: ${(c.lastReload.problems ?? []).join('; ')}` : ''}`);
    if (c.restartNeeded.length > 0) out.push(`config: changed but waiting for a restart: ${c.restartNeeded.join(', ')}`);
  }
  for (const n of doc.nodes) {
    if (n.state !== 'healthy') out.push(`${n.name} is ${n.state} since ${n.since}: ${n.why}`);
    for (const f of n.flags) {
      out.push(`${n.name} ${f.code} since ${f.since}: ${f.message}`);
      if (f.fix !== undefined) out.push(`  fix: ${f.fix}`);
    }
  }
  return out.join('\n');
}

function bytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}
