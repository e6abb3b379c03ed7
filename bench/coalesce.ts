/**
 * `npm run bench -- --coalesce`: a hundred clients pull the same layer at once from nodes whose
 * storage is busy (bench/throttled-node.ts: one shared read budget per node), through haproxy
 * and through harbor-lb with coalesce.enabled. Measured: bytes the nodes read, wall time until
 * every client has the whole layer, the contender's memory. Loopback only; every process is the
 * bench's own and stopped at the end.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { blobPath, haproxyCfg, harborLbYaml, MANIFEST_PATH, serveArgs } from './lib/configs.js';
import { pull } from './lib/load.js';
import { freePorts, harborLbReady, portOpen, processTree, type Procs, rssKiBOf, sampleRss, waitFor } from './lib/procs.js';

export interface CoalesceContext {
  procs: Procs;
  work: string;
  cli: string;
  root: string;
  blobFile: string;
  blobHex: string;
  blobSize: number;
  tokenJson: string;
  rootCert: string;
  clients: number;
  /** Each node's read budget, bytes per second. */
  nodeRate: number;
  log: (msg: string) => void;
}

interface Row {
  contender: string;
  wallS: number;
  nodeBytes: number;
  gets: number;
  heads: number;
  failures: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  /** The most one of its processes grew. */
  oneGrowthMiB: number;
}

export async function runCoalesce(c: CoalesceContext): Promise<string> {
  const digest = `sha256:${c.blobHex}`;
  const ports = await freePorts(7);
  const [n1, n2, n3, pH, pL, aL] = ports;
  const nodes = [n1!, n2!, n3!];
  for (const [i, port] of nodes.entries()) {
    c.procs.start(`throttled node ${i + 1}`, process.execPath, [join(c.root, 'dist/bench/throttled-node.js'), String(port), c.blobFile, digest, String(c.nodeRate)], join(c.work, `logs/throttled-${i + 1}.log`));
  }
  for (const p of nodes) await waitFor(`throttled node on ${p}`, () => portOpen(p));
  const hConf = join(c.work, 'coalesce-haproxy.cfg');
  // Checked on the blob path with HEAD-less GETs would spend the budget: the check asks for /stats.
  writeFileSync(hConf, haproxyCfg({ port: pH!, work: c.work, backends: nodes, checkPath: '/stats', threads: availableParallelism() }));
  const haproxy = c.procs.start('haproxy (coalesce)', 'haproxy', ['-f', hConf, '-db'], join(c.work, 'logs/coalesce-haproxy.log'));
  const lConf = join(c.work, 'coalesce-harbor-lb.yaml');
  writeFileSync(lConf, `${harborLbYaml({ port: pL!, adminPort: aL!, backends: nodes, rootCert: c.rootCert, store: 'memory' }).replace(`health: {path: "${MANIFEST_PATH}"`, 'health: {path: "/stats"')}coalesce: {enabled: true}\ncache: {dir: "${join(c.work, 'coalesce-cache')}", maxSize: 4GiB}\n`);
  const lb = c.procs.start('harbor-lb (coalesce)', process.execPath, serveArgs(c.cli, lConf), join(c.work, 'logs/coalesce-harbor-lb.log'));
  await waitFor('haproxy (coalesce)', () => portOpen(pH!));
  await waitFor('harbor-lb (coalesce): nodes healthy', harborLbReady(aL!), 60_000);
  const token = (JSON.parse(readFileSync(c.tokenJson, 'utf8')) as { token: string }).token;
  const nodeStats = async () => {
    const all = await Promise.all(nodes.map(async (p) => (await (await fetch(`http://127.0.0.1:${p}/stats`)).json()) as { gets: number; heads: number; bytes: number }));
    return all.reduce((a, s) => ({ gets: a.gets + s.gets, heads: a.heads + s.heads, bytes: a.bytes + s.bytes }), { gets: 0, heads: 0, bytes: 0 });
  };
  const rows: Row[] = [];
  // The third wave: the same clients again, once the layer is in harbor-lb's blob cache.
  for (const [name, port, root] of [
    ['haproxy', pH!, haproxy.pid],
    ['harbor-lb', pL!, lb.pid],
    ['harbor-lb, again (cache)', pL!, lb.pid],
  ] as const) {
    const pids = processTree(root);
    const before = await nodeStats();
    const rssBefore = rssKiBOf(pids) / 1024;
    const sampler = sampleRss(pids);
    // Each process on its own too: with request workers, each pays its own young generation and buffers.
    const each = pids.map((pid) => ({ before: rssKiBOf([pid]), sampler: sampleRss([pid]) }));
    c.log(`coalesce: ${c.clients} clients pull one ${Math.round(c.blobSize / 1048576)} MiB layer through ${name}`);
    const r = await pull(`http://127.0.0.1:${port}${blobPath(c.blobHex)}`, c.blobSize, c.clients, 1, 1200, undefined, [`Authorization: Bearer ${token}`]);
    const rssPeak = sampler.stop() / 1024;
    const onePeak = Math.max(...each.map((e) => (e.sampler.stop() - e.before) / 1024));
    const after = await nodeStats();
    rows.push({ contender: name, wallS: r.wallS, nodeBytes: after.bytes - before.bytes, gets: after.gets - before.gets, heads: after.heads - before.heads, failures: r.failures.length, rssBeforeMiB: rssBefore, rssPeakMiB: rssPeak, oneGrowthMiB: onePeak });
    c.log(`  ${name}: ${r.wallS.toFixed(1)} s, nodes read ${((after.bytes - before.bytes) / c.blobSize).toFixed(2)}x the layer${r.failures.length > 0 ? `; ${r.failures.length} failures: ${r.failures[0]}` : ''}`);
  }
  return render(rows, c);
}

function render(rows: Row[], c: CoalesceContext): string {
  const h = rows.find((r) => r.contender === 'haproxy');
  const l = rows.find((r) => r.contender === 'harbor-lb');
  const mib = (b: number) => Math.round(b / 1048576).toLocaleString('en-US');
  const lines = [
    `#### Coalescing: ${c.clients} clients pull one ${mib(c.blobSize)} MiB layer at once (\`npm run bench -- --coalesce\`)`,
    '',
    `Three nodes, each with one read budget of ${mib(c.nodeRate)} MiB/s shared by all its pulls (busy storage); each client a curl with a bearer token, one connection. harbor-lb with \`coalesce.enabled\` and a blob cache (\`cache.dir\`), its default workers, token verification on. The last row is the same pulls once more, after the first wave: served from the cache, each after its own HEAD.`,
    '',
    '| contender | wall time until all have the layer | × haproxy | bytes read from the nodes | × the layer | node GETs / HEADs | failed | RSS MiB (before → peak) | the most one process grew |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.contender} | ${r.wallS.toFixed(1)} s | ${h ? (h.wallS / r.wallS).toFixed(2) + 'x faster' : '–'} | ${mib(r.nodeBytes)} MiB | ${(r.nodeBytes / c.blobSize).toFixed(2)}x | ${r.gets} / ${r.heads} | ${r.failures} | ${r.rssBeforeMiB.toFixed(0)} → ${r.rssPeakMiB.toFixed(0)} | +${r.oneGrowthMiB.toFixed(0)} MiB |`,
    );
  }
  if (h && l) {
    lines.push('', `Targets (issue 21): node bytes ≤ 2x the layer: ${(l.nodeBytes / c.blobSize).toFixed(2)}x (${l.nodeBytes <= 2 * c.blobSize ? 'met' : '**not met**'}); at least 5x faster than haproxy: ${(h.wallS / l.wallS).toFixed(2)}x (${h.wallS / l.wallS >= 5 ? 'met' : '**not met**'}); RSS within 64 MiB of idle: +${(l.rssPeakMiB - l.rssBeforeMiB).toFixed(0)} MiB over all its processes (${l.rssPeakMiB - l.rssBeforeMiB <= 64 ? 'met' : '**not met**'}), +${l.oneGrowthMiB.toFixed(0)} MiB the most one process grew (${l.oneGrowthMiB <= 64 ? 'met' : '**not met**'}).`);
  }
  return lines.join('\n') + '\n';
}
