/**
 * `npm run bench -- --scale`: how harbor-lb grows with cores, next to haproxy, for a machine with
 * cores to spare (8 workers want 16+). For each step k (1, 2, 4, 8… while 2k cores exist),
 * harbor-lb with k request workers and haproxy with k threads are pinned to cores 0..k-1
 * (taskset, when present), the load generators to the others, and each is measured on small GETs
 * and on pulls. Loopback only; every process is the bench's own and stopped after its step.
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobPath, haproxyCfg, harborLbYaml, MANIFEST_PATH, serveArgs } from './lib/configs.js';
import { pull, wrk, wrkErrors } from './lib/load.js';
import { cpuSecondsOf, freePorts, harborLbReady, portOpen, processTree, type Procs, run, waitFor } from './lib/procs.js';
import { writeFileSync } from 'node:fs';

export interface ScaleContext {
  root: string;
  procs: Procs;
  work: string;
  cli: string;
  backends: number[];
  rootCert: string;
  blobHex: string;
  blobSize: number;
  seconds: number;
  log: (msg: string) => void;
}

interface StepResult {
  k: number;
  contender: 'haproxy' | 'harbor-lb';
  reqPerS: number;
  cpuUsPerReq: number;
  mibPerS: number;
  cpuSPerGiB: number;
  errors: number;
}

/** The steps this machine can run, and whether contenders can be kept off the load generators' cores. */
export async function scaleSteps(): Promise<{ steps: number[]; pinned: boolean; cores: number }> {
  const cores = availableParallelism();
  const steps = [1, 2, 4, 8, 16].filter((k) => k === 1 || 2 * k <= cores);
  const pinned = cores >= 2 && (await run('sh', ['-c', 'command -v taskset'], 5000)).code === 0;
  return { steps, pinned, cores };
}

export async function runScale(c: ScaleContext): Promise<string> {
  const { steps, pinned, cores } = await scaleSteps();
  const results: StepResult[] = [];
  c.log(`scale: steps ${steps.join(', ')} on ${cores} cores${pinned ? ', contenders pinned to cores 0..k-1, load on the rest' : ', nothing pinned (no taskset)'}`);
  for (const k of steps) {
    const mine = k === 1 ? '0' : `0-${k - 1}`;
    const theirs = k < cores ? `${k}-${cores - 1}` : undefined;
    const pin = (cmd: string, args: string[]) => (pinned ? { cmd: 'taskset', args: ['-c', mine, cmd, ...args] } : { cmd, args });
    const [pH, pL, aL] = await freePorts(3);
    const hConf = join(c.work, `scale-haproxy-${k}.cfg`);
    writeFileSync(hConf, haproxyCfg({ port: pH!, work: c.work, backends: c.backends, checkPath: MANIFEST_PATH, threads: k }));
    const h = pin('haproxy', ['-f', hConf, '-db']);
    const haproxy = c.procs.start(`haproxy ${k}t`, h.cmd, h.args, join(c.work, `logs/scale-haproxy-${k}.log`));
    const lConf = join(c.work, `scale-harbor-lb-${k}.yaml`);
    writeFileSync(lConf, harborLbYaml({ port: pL!, adminPort: aL!, backends: c.backends, rootCert: c.rootCert, store: 'memory', workers: k }));
    const l = pin(process.execPath, serveArgs(c.cli, lConf));
    const lb = c.procs.start(`harbor-lb ${k}w`, l.cmd, l.args, join(c.work, `logs/scale-harbor-lb-${k}.log`));
    await waitFor(`haproxy ${k}t`, () => portOpen(pH!));
    await waitFor(`harbor-lb ${k}w: three nodes healthy`, harborLbReady(aL!), 60_000);
    for (const [contender, port, pids] of [
      ['haproxy', pH!, [haproxy.pid]],
      ['harbor-lb', pL!, processTree(lb.pid)],
    ] as const) {
      const base = `http://127.0.0.1:${port}`;
      const load = { threads: Math.max(1, Math.min(8, cores - k)), connections: 64 * k, script: join(c.root, 'bench/wrk-json.lua'), cpus: pinned ? theirs : undefined };
      await wrk(base + MANIFEST_PATH, { ...load, seconds: 2 });
      await sleep(300);
      const cpu0 = cpuSecondsOf(pids);
      const w = await wrk(base + MANIFEST_PATH, { ...load, seconds: c.seconds });
      const cpuS = cpuSecondsOf(pids) - cpu0;
      const streams = 4 * k;
      const cpu1 = cpuSecondsOf(pids);
      const p = await pull(base + blobPath(c.blobHex), c.blobSize, streams, 2, 300, pinned ? theirs : undefined);
      const pullCpu = cpuSecondsOf(pids) - cpu1;
      const gib = p.bytes / 1024 ** 3;
      const r: StepResult = {
        k,
        contender,
        reqPerS: w.requests / (w.durationUs / 1e6),
        cpuUsPerReq: (cpuS * 1e6) / w.requests,
        mibPerS: p.bytes / 1024 ** 2 / p.wallS,
        cpuSPerGiB: pullCpu / gib,
        errors: wrkErrors(w) + p.failures.length,
      };
      results.push(r);
      c.log(`  k=${k} ${contender.padEnd(9)} ${Math.round(r.reqPerS)} req/s ${r.cpuUsPerReq.toFixed(1)} us/req; pulls (${streams} streams) ${Math.round(r.mibPerS)} MiB/s ${r.cpuSPerGiB.toFixed(2)} s/GiB${r.errors > 0 ? `; ${r.errors} errors` : ''}`);
    }
    await c.procs.stop(haproxy);
    await c.procs.stop(lb);
  }
  return renderScale(results, { cores, pinned, seconds: c.seconds });
}

function renderScale(results: StepResult[], o: { cores: number; pinned: boolean; seconds: number }): string {
  const get = (k: number, id: string) => results.find((r) => r.k === k && r.contender === id);
  const one = get(1, 'harbor-lb');
  const f = (x: number | undefined, d = 0) => (x === undefined ? '–' : d === 0 ? Math.round(x).toLocaleString('en-US') : x.toFixed(d));
  const lines = [
    `#### Scaling with cores (\`npm run bench -- --scale\`, ${o.cores} cores${o.pinned ? '; contender on cores 0..k-1, load generators on the others' : '; not pinned'})`,
    '',
    `Small GETs: wrk, 64 connections per core, ${o.seconds} s. Pulls: 64 MiB blobs, 4 streams per core, 2 each. harbor-lb with all features on (token verification, memory pins, checks).`,
    '',
    '| cores (k) | haproxy req/s | harbor-lb req/s | × haproxy | harbor-lb × its k=1 | CPU µs/req haproxy / harbor-lb | pulls MiB/s haproxy / harbor-lb | CPU s/GiB haproxy / harbor-lb | errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const k of [...new Set(results.map((r) => r.k))]) {
    const h = get(k, 'haproxy');
    const l = get(k, 'harbor-lb');
    lines.push(
      `| ${k} | ${f(h?.reqPerS)} | ${f(l?.reqPerS)} | ${l && h ? (l.reqPerS / h.reqPerS).toFixed(2) + 'x' : '–'} | ${l && one ? (l.reqPerS / one.reqPerS).toFixed(2) + 'x' : '–'} | ${f(h?.cpuUsPerReq, 1)} / ${f(l?.cpuUsPerReq, 1)} | ${f(h?.mibPerS)} / ${f(l?.mibPerS)} | ${f(h?.cpuSPerGiB, 2)} / ${f(l?.cpuSPerGiB, 2)} | ${(h?.errors ?? 0) + (l?.errors ?? 0)} |`,
    );
  }
  return lines.join('\n') + '\n';
}
