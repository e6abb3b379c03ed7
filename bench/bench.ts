/**
 * `npm run bench`: harbor-lb side by side with haproxy, nginx, a direct connection and a bare Node
 * relay, on the same three nginx backends on loopback. Contenders are interleaved in rounds (order
 * rotated each round) so that drift on a shared machine spreads over all of them. Raw samples go
 * to bench/results/<timestamp>.jsonl; the summary table (ratios to haproxy) to docs/benchmarks.md
 * and stdout. Every load is bounded in time and every process started here is stopped at the end.
 *
 *   node dist/bench/bench.js [--quick] [--rounds N] [--keep] [--no-doc]
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { backendNginx, blobPath, haproxyCfg, harborLbYaml, MANIFEST_PATH, proxyNginx, serveArgs, TOKEN_PATH, uploadPath } from './lib/configs.js';
import { hey, pull, push, wrk, wrkErrors, type BlobResult } from './lib/load.js';
import { cpuSecondsOf, freePorts, harborLbReady, minorFaultsOf, portOpen, processTree, Procs, rssKiBOf, run, sampleRss, statusKiB, waitFor, type Managed } from './lib/procs.js';
import { machineFacts, renderReport, writeDoc, type Contender } from './lib/report.js';
import { countLinesWith } from './lib/count-lines.js';
import type { Metric, Sample } from './lib/stats.js';
import { makeToken } from './lib/token.js';
import { runScale } from './scale.js';
import { runCoalesce } from './coalesce.js';
import { runInstructions } from './instructions.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MiB = 1024 * 1024;
const BLOB_SIZE = 64 * MiB;
const MANIFEST_SIZE = 2048;

interface Settings {
  quick: boolean;
  rounds: number;
  m1Seconds: number;
  m4Seconds: number;
  m5Seconds: number;
  heySeconds: number;
  /** Blobs per measurement, split over the streams: 16 x 64 MiB = 1 GiB. */
  blobsPerRun: number;
  settleMs: number;
  keep: boolean;
  doc: boolean;
  /** --scale: the cores table (bench/scale.ts) instead of the contenders' rounds. */
  scale: boolean;
  /** --coalesce: a hundred clients on one layer (bench/coalesce.ts) instead of the contenders' rounds. */
  coalesce: boolean;
  /** --instructions: instructions per small GET under callgrind (bench/instructions.ts) instead of the contenders' rounds. */
  instructions: boolean;
  /** --against DIST: another build measured in alternation (--instructions). */
  against?: string;
}

function parseArgs(argv: string[]): Settings {
  const quick = argv.includes('--quick');
  const s: Settings = quick
    ? { quick, rounds: 1, m1Seconds: 3, m4Seconds: 2, m5Seconds: 2, heySeconds: 0, blobsPerRun: 8, settleMs: 300, keep: false, doc: false, scale: false, coalesce: false, instructions: false }
    : { quick, rounds: 3, m1Seconds: 8, m4Seconds: 5, m5Seconds: 6, heySeconds: 5, blobsPerRun: 16, settleMs: 500, keep: false, doc: true, scale: false, coalesce: false, instructions: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') continue;
    else if (a === '--rounds') s.rounds = Math.max(1, Math.min(10, Number(argv[++i]) || 1));
    else if (a === '--keep') s.keep = true;
    else if (a === '--no-doc') s.doc = false;
    else if (a === '--doc') s.doc = true;
    else if (a === '--scale') s.scale = true;
    else if (a === '--coalesce') s.coalesce = true;
    else if (a === '--instructions') s.instructions = true;
    else if (a === '--against') {
      s.against = argv[++i];
      if (s.against === undefined) throw new Error('--against needs a dist folder (another build, e.g. a worktree of the base commit built with npx tsc -p .)');
    }
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench [-- --quick] [--rounds N] [--keep] [--no-doc|--doc]\n' +
        '  --quick    one short round (about a minute): a smoke run; docs/benchmarks.md is left alone unless --doc\n' +
        '  --rounds N rounds of interleaved contenders (default 3)\n  --keep     keep the work folder (configs, logs) under /tmp\n' +
        '  --scale    harbor-lb with 1, 2, 4, 8... workers next to haproxy with as many threads, pinned (taskset), for a machine with 2k cores;\n' +
        '             written to bench/results and, with --doc, to docs/benchmarks.md\n' +
        '  --coalesce 100 clients pull one layer at once from throttled nodes, through haproxy and harbor-lb with coalesce.enabled\n' +
        '  --instructions  instructions per small GET, counted by callgrind (valgrind): repeatable on a noisy machine;\n' +
        '             --against DIST measures another build (a dist folder) in alternation\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return s;
}

/** Contenders and the metrics each takes part in. Order here is round 0's order. */
interface Entry extends Contender {
  port: number;
  /** Processes whose CPU and memory are the contender's (none for direct). */
  pids: number[];
  main?: Managed;
  metrics: ReadonlySet<Metric>;
  adminPort?: number;
}

async function main(): Promise<number> {
  const settings = parseArgs(process.argv.slice(2));
  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const jsonl = join(resultsDir, `${runId}.jsonl`);
  const cli = join(ROOT, 'dist/src/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build)`);
  for (const tool of ['nginx', 'haproxy', 'wrk', 'curl', 'redis-server', 'openssl']) {
    if ((await run('sh', ['-c', `command -v ${tool}`], 5000)).code !== 0) throw new Error(`${tool} is missing: run bench/setup.sh`);
  }
  const haveHey = (await run('sh', ['-c', 'command -v hey'], 5000)).code === 0;

  // Work folders: configs, logs, the served files; request bodies the backends read go to tmpfs.
  const work = mkdtempSync('/tmp/harbor-lb-bench-');
  const shmRoot = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/harbor-lb-bench-') : join(work, 'body');
  mkdirSync(shmRoot, { recursive: true });
  for (const d of [work, shmRoot]) chmodSync(d, 0o755); // nginx workers run as another user when started as root
  for (const d of ['logs', 'tmp', 'www', 'pki']) mkdirSync(join(work, d), { recursive: true });
  const procs = new Procs(process.env.BENCH_PIDFILE ?? join(work, 'pids'));
  procs.noteDir(shmRoot);
  if (!settings.keep) procs.noteDir(work);
  let stopping = false;
  const cleanup = async () => {
    stopping = true;
    await procs.stopAll();
    if (!settings.keep) rmSync(work, { recursive: true, force: true });
    rmSync(shmRoot, { recursive: true, force: true });
  };
  process.once('exit', () => procs.killAllNow());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping everything it started\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  // The whole run is bounded too: something that hangs is stopped, not waited for.
  const budgetMs = (settings.quick ? 6 : 25) * 60_000 * Math.max(1, settings.rounds / 3);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: over its time budget (${budgetMs / 60_000} min), stopping\n`);
    void cleanup().finally(() => process.exit(1));
  }, budgetMs);

  try {
    const log = (msg: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
    const facts = await machineFacts(ROOT, process.argv.slice(2));
    log(`harbor-lb bench ${settings.quick ? '(quick) ' : ''}run ${runId}: ${settings.rounds} round(s), load average ${facts.loadStart}`);

    // Served files: a 2 KiB manifest, a 64 MiB blob, a token signed with the cluster key.
    const www = join(work, 'www');
    writeFileSync(join(www, 'manifest.json'), manifestJson());
    const blobFile = join(www, 'blob.bin');
    const blobHex = writeRandomBlob(blobFile, BLOB_SIZE);
    if (statSync(join(www, 'manifest.json')).size !== MANIFEST_SIZE) throw new Error('manifest is not 2 KiB');
    const token = await makeToken(join(work, 'pki'), www, 3600);

    const [b1, b2, b3, pHaproxy, pNginx, pRelay, pRedis, pLb, aLb, pLbRedis, aLbRedis, pLbNoVerify, aLbNoVerify, pHaproxy1, pLb1, aLb1, pUndici, pUndiciBlobs, pLbKernel, aLbKernel] = await freePorts(20);
    const cores = availableParallelism();
    const backends = [b1!, b2!, b3!];

    // Backends.
    const backendProcs: Managed[] = [];
    for (const [i, port] of backends.entries()) {
      const conf = join(work, `backend-n${i + 1}.conf`);
      writeFileSync(conf, backendNginx({ name: `n${i + 1}`, port, work, bodyTemp: shmRoot, www, blobHex }));
      backendProcs.push(procs.start(`backend n${i + 1}`, 'nginx', ['-p', work, '-c', conf, '-e', join(work, 'logs', `n${i + 1}-error.log`)], join(work, 'logs', `n${i + 1}.out`)));
    }
    for (const p of backends) await waitFor(`backend on port ${p}`, () => portOpen(p));

    if (settings.coalesce) {
      // Issue 21's layer: 256 MiB (64 MiB for --quick).
      const layerSize = (settings.quick ? 64 : 256) * MiB;
      const layerFile = join(www, 'layer.bin');
      const layerHex = writeRandomBlob(layerFile, layerSize);
      const report = await runCoalesce({ procs, work, cli, root: ROOT, blobFile: layerFile, blobHex: layerHex, blobSize: layerSize, tokenJson: token.tokenJson, rootCert: token.rootCert, clients: settings.quick ? 20 : 100, nodeRate: 40 * MiB, log });
      writeFileSync(join(resultsDir, `${runId}-coalesce.md`), report);
      if (settings.doc) writeDoc(join(ROOT, 'docs/benchmarks.md'), report, 'bench-coalesce');
      process.stdout.write(`\n${report}\n`);
      return 0;
    }
    if (settings.instructions) {
      const report = await runInstructions({ procs, work, cli, root: ROOT, backends, rootCert: token.rootCert, rounds: settings.quick ? 1 : settings.rounds, warmSeconds: settings.quick ? 10 : 20, idleSeconds: settings.quick ? 5 : 10, countSeconds: settings.quick ? 10 : 20, against: settings.against, commit: facts.commit, log });
      writeFileSync(join(resultsDir, `${runId}-instructions.md`), report);
      if (settings.doc && settings.against === undefined) writeDoc(join(ROOT, 'docs/benchmarks.md'), report, 'bench-instructions');
      process.stdout.write(`\n${report}\n`);
      return 0;
    }
    if (settings.scale) {
      const report = await runScale({ root: ROOT, procs, work, cli, backends, rootCert: token.rootCert, blobHex, blobSize: BLOB_SIZE, seconds: settings.quick ? 3 : settings.m1Seconds, log });
      writeFileSync(join(resultsDir, `${runId}-scale.md`), report);
      if (settings.doc) writeDoc(join(ROOT, 'docs/benchmarks.md'), report, 'bench-scale');
      process.stdout.write(`\n${report}\n`);
      return 0;
    }

    // Contenders.
    const redis = procs.start('redis', 'redis-server', ['--port', String(pRedis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], join(work, 'logs/redis.log'));
    await waitFor('redis-server', () => portOpen(pRedis!));
    const haproxyConf = join(work, 'haproxy.cfg');
    writeFileSync(haproxyConf, haproxyCfg({ port: pHaproxy!, work, backends, checkPath: MANIFEST_PATH, threads: cores }));
    const haproxy = procs.start('haproxy', 'haproxy', ['-f', haproxyConf, '-db'], join(work, 'logs/haproxy.log'));
    const haproxy1Conf = join(work, 'haproxy-1t.cfg');
    writeFileSync(haproxy1Conf, haproxyCfg({ port: pHaproxy1!, work, backends, checkPath: MANIFEST_PATH, threads: 1 }));
    const haproxy1 = procs.start('haproxy-1t', 'haproxy', ['-f', haproxy1Conf, '-db'], join(work, 'logs/haproxy-1t.log'));
    const nginxConf = join(work, 'nginx-proxy.conf');
    writeFileSync(nginxConf, proxyNginx({ port: pNginx!, work, backends }));
    const nginx = procs.start('nginx proxy', 'nginx', ['-p', work, '-c', nginxConf, '-e', join(work, 'logs/nginx-proxy-error.log')], join(work, 'logs/nginx-proxy.out'));
    const relay = procs.start('node relay', process.execPath, [join(ROOT, 'dist/bench/relay.js'), String(pRelay), ...backends.map(String)], join(work, 'logs/relay.log'));
    const undici = procs.start('undici proxy', process.execPath, [join(ROOT, 'dist/bench/undici-proxy.js'), String(pUndici), String(cores), ...backends.map(String)], join(work, 'logs/undici-proxy.log'));
    // A second one for blobs: pulls through it grow its heap by hundreds of MiB, which makes its
    // small requests cheaper, and M1's reference must not depend on what ran before it.
    const undiciBlobs = procs.start('undici proxy (blobs)', process.execPath, [join(ROOT, 'dist/bench/undici-proxy.js'), String(pUndiciBlobs), String(cores), ...backends.map(String)], join(work, 'logs/undici-proxy-blobs.log'));
    const harborLb = (name: string, port: number, adminPort: number, store: 'memory' | 'redis', verify: boolean, workers?: number, connectionBalance?: 'kernel') => {
      const conf = join(work, `${name}.yaml`);
      writeFileSync(conf, harborLbYaml({ port, adminPort, backends, rootCert: verify ? token.rootCert : undefined, store, redisPort: pRedis, workers, connectionBalance }));
      // The routing log on at info, written to a file, as in production.
      // As the container runs it (Dockerfile's ENTRYPOINT).
      return procs.start(name, process.execPath, serveArgs(cli, conf), join(work, `logs/${name}.log`));
    };
    const lb = harborLb('harbor-lb', pLb!, aLb!, 'memory', true);
    const lbRedis = harborLb('harbor-lb-redis', pLbRedis!, aLbRedis!, 'redis', true);
    const lbNoVerify = harborLb('harbor-lb-noverify', pLbNoVerify!, aLbNoVerify!, 'memory', false);
    const lb1 = harborLb('harbor-lb-1w', pLb1!, aLb1!, 'memory', true, 1);
    const lbKernel = harborLb('harbor-lb-kernel', pLbKernel!, aLbKernel!, 'memory', true, undefined, 'kernel');
    const cores3 = new Set<Metric>(['M1', 'M2', 'M3']);

    const all = new Set<Metric>(['M1', 'M2', 'M3', 'M4', 'M5', 'M6', 'hey']);
    const entries: Entry[] = [
      { id: 'direct', label: 'direct (one backend, the limit)', port: backends[0]!, pids: [], metrics: new Set(['M1', 'M2', 'M3', 'hey']) },
      { id: 'haproxy', label: `haproxy 2.6, ${cores} threads`, port: pHaproxy!, pids: [haproxy.pid], main: haproxy, metrics: all },
      { id: 'haproxy-1t', label: 'haproxy 2.6, 1 thread', port: pHaproxy1!, pids: [haproxy1.pid], main: haproxy1, metrics: cores3 },
      { id: 'nginx', label: 'nginx (proxy)', port: pNginx!, pids: [], main: nginx, metrics: new Set(['M1', 'M2', 'M3']) },
      { id: 'harbor-lb', label: `harbor-lb, ${cores} workers (default)`, port: pLb!, pids: [lb.pid], main: lb, adminPort: aLb, metrics: all },
      { id: 'harbor-lb-1w', label: 'harbor-lb, 1 worker', port: pLb1!, pids: [lb1.pid], main: lb1, adminPort: aLb1, metrics: cores3 },
      { id: 'harbor-lb-kernel', label: `harbor-lb, ${cores} workers, connectionBalance: kernel`, port: pLbKernel!, pids: [lbKernel.pid], main: lbKernel, adminPort: aLbKernel, metrics: new Set(['M2', 'M3', 'M6']) },
      { id: 'node-relay', label: 'bare Node relay (ceiling)', port: pRelay!, pids: [relay.pid], main: relay, metrics: new Set(['M2', 'M3']) },
      { id: 'undici-proxy', label: `minimal undici proxy, ${cores} workers`, port: pUndici!, pids: [undici.pid], main: undici, metrics: new Set(['M1']) },
      { id: 'undici-blobs', label: `minimal undici proxy, ${cores} workers`, port: pUndiciBlobs!, pids: [undiciBlobs.pid], main: undiciBlobs, metrics: new Set(['M2', 'M3']) },
      { id: 'harbor-lb-redis', label: 'harbor-lb, sticky.store: redis', port: pLbRedis!, pids: [lbRedis.pid], main: lbRedis, adminPort: aLbRedis, metrics: new Set(['M5']) },
      { id: 'harbor-lb-noverify', label: 'harbor-lb, no token section', port: pLbNoVerify!, pids: [lbNoVerify.pid], main: lbNoVerify, adminPort: aLbNoVerify, metrics: new Set(['M4']) },
    ];
    for (const e of entries) if (e.id !== 'direct') await waitFor(`${e.label} on port ${e.port}`, () => portOpen(e.port));
    // nginx's workers and the Redis server behind harbor-lb-redis are part of what those contenders cost.
    entries.find((e) => e.id === 'nginx')!.pids = processTree(nginx.pid);
    entries.find((e) => e.id === 'harbor-lb-redis')!.pids = [lbRedis.pid, redis.pid];
    for (const e of entries.filter((x) => x.adminPort !== undefined)) {
      await waitFor(`${e.id}: all three nodes healthy`, harborLbReady(e.adminPort!));
    }
    // With request workers, harbor-lb is its control plane and the workers it forked (all
    // listening once its admin port answers, which the loop above waited for).
    for (const e of entries.filter((x) => x.id === 'harbor-lb' || x.id === 'harbor-lb-kernel' || x.id === 'harbor-lb-noverify' || x.id === 'undici-proxy' || x.id === 'undici-blobs')) e.pids = processTree(e.main!.pid);
    entries.find((e) => e.id === 'harbor-lb-redis')!.pids = [...processTree(lbRedis.pid), redis.pid];
    const rssStartMiB = new Map(entries.map((e) => [e.id, rssKiBOf(e.pids) / 1024]));
    /** Each harbor-lb process's resident memory when idle, to hold its peak under load against. */
    const lbIdleKiB = new Map(entries.find((e) => e.id === 'harbor-lb')!.pids.map((p) => [p, statusKiB(p, 'VmRSS')]));
    log(`started: 3 backends, ${entries.map((e) => e.id).join(', ')}, redis (work folder ${work})`);

    // Every contender answers correctly before it is measured (wrk counts error answers as requests).
    const base = (e: Entry) => `http://127.0.0.1:${e.port}`;
    /** Requests sent outside the recorded samples (checks, warm-ups), to account for harbor-lb's routing lines. */
    const unrecorded = new Map<string, number>();
    const addUnrecorded = (id: string, n: number) => unrecorded.set(id, (unrecorded.get(id) ?? 0) + n);
    for (const e of entries) {
      addUnrecorded(e.id, 1 + (e.metrics.has('M2') ? 4 : 0) + (e.metrics.has('M3') ? 4 : 0) + (e.metrics.has('M4') ? 1 : 0));
      const m = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '10', base(e) + MANIFEST_PATH], 15_000);
      if (e.metrics.has('M1') || e.metrics.has('M5')) if (m.stdout !== `200 ${MANIFEST_SIZE}`) throw new Error(`${e.id}: manifest GET answered "${m.stdout}"`);
      if (e.metrics.has('M2')) {
        const r = await pull(base(e) + blobPath(blobHex), BLOB_SIZE, 1, 4, 60);
        if (r.failures.length > 0) throw new Error(`${e.id}: blob GET: ${r.failures.join('; ')}`);
      }
      if (e.metrics.has('M3')) {
        const r = await push(base(e), (u) => uploadPath(u, blobHex), blobFile, BLOB_SIZE, 1, 4, 60);
        if (r.failures.length > 0) throw new Error(`${e.id}: blob PUT: ${r.failures.join('; ')}`);
      }
      if (e.metrics.has('M4')) {
        const t = await run('curl', ['-s', '-w', '\n%{http_code}', '--max-time', '10', base(e) + TOKEN_PATH], 15_000);
        if (!t.stdout.endsWith('\n200') || !t.stdout.includes('"token"')) throw new Error(`${e.id}: token GET answered "${t.stdout.slice(-200)}"`);
      }
    }
    const verdicts = async (e: Entry) => {
      const text = await (await fetch(`http://127.0.0.1:${e.adminPort}/metrics`)).text();
      const good = [...text.matchAll(/^harbor_lb_token_verdicts_total\{[^}]*verdict="good"[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
      return good;
    };
    const lbEntry = entries.find((e) => e.id === 'harbor-lb')!;
    if ((await verdicts(lbEntry)) === 0) throw new Error('harbor-lb verified no token: the token section is not in effect');
    log('every contender answers: manifest 200 (2 KiB), blob 200 (64 MiB), upload 201 after the whole body, token 200');

    const samples: Sample[] = [];
    const record = (s: Sample) => {
      if (stopping) return; // interrupted: what was in flight is not a measurement
      samples.push(s);
      appendFileSync(jsonl, JSON.stringify(s) + '\n');
      const v = s.ok
        ? s.reqPerS !== undefined
          ? `${Math.round(s.reqPerS)} req/s p50 ${s.p50Ms?.toFixed(2)} ms p99 ${s.p99Ms?.toFixed(2)} ms${s.cpuUsPerReq !== undefined ? ` cpu ${s.cpuUsPerReq.toFixed(1)} us/req` : ''}`
          : `${s.mibPerS?.toFixed(0)} MiB/s${s.cpuSPerGiB !== undefined ? ` cpu ${s.cpuSPerGiB.toFixed(2)} s/GiB` : ''}${s.faultsPerGiB !== undefined ? ` ${Math.round(s.faultsPerGiB)} faults/GiB` : ''}${s.rssPeakMiB !== undefined ? ` rss ${s.rssBeforeMiB?.toFixed(0)}->${s.rssPeakMiB.toFixed(0)} MiB` : ''}`
        : `FAILED ${s.failure}`;
      log(`  r${s.round + 1} ${s.metric} ${s.variant.padEnd(10)} ${s.contender.padEnd(19)} ${v}`);
    };
    const alive = (e: Entry) => e.main === undefined || (e.main.child.exitCode === null && e.main.child.signalCode === null);

    /** Runs `load` with the contender's CPU and memory measured around it. */
    const measured = async <T>(e: Entry, load: () => Promise<T>) => {
      await sleep(settings.settleMs);
      const rssBefore = rssKiBOf(e.pids) / 1024;
      const cpu0 = cpuSecondsOf(e.pids);
      const faults0 = minorFaultsOf(e.pids);
      const sampler = sampleRss(e.pids);
      const result = await load();
      const rssPeak = sampler.stop() / 1024;
      const cpuS = cpuSecondsOf(e.pids) - cpu0;
      const faults = minorFaultsOf(e.pids) - faults0;
      const own = e.pids.length > 0;
      return { result, cpuS: own ? cpuS : undefined, faults: own ? faults : undefined, rssBeforeMiB: own ? rssBefore : undefined, rssPeakMiB: own ? rssPeak : undefined, loadAvg1: loadavg()[0] };
    };

    /**
     * The first load a process sees on a path runs cold (JIT, pools): each contender gets one
     * unrecorded load on each small-request path and each blob path (metric and streams) before
     * its first sample there. A blob path's check before the rounds is not enough: it pulls and
     * pushes on one connection, which reaches one of harbor-lb's workers. The small-request
     * warm-ups come in round 1 after the blobs, so round 1's pulls still run on processes that
     * served no small requests. True the first time a key is asked for.
     */
    const warmed = new Set<string>();
    const firstLoad = (key: string): boolean => {
      if (warmed.has(key)) return false;
      warmed.add(key);
      return true;
    };
    const small = async (round: number, position: number, metric: Metric, variant: string, e: Entry, path: string, seconds: number, headers: string[] = []) => {
      if (firstLoad(`${e.id} ${path} ${headers.join(' ')}`)) {
        const w = await wrk(base(e) + path, { threads: 2, connections: 64, seconds: settings.quick ? 1 : 2, script: join(ROOT, 'bench/wrk-json.lua'), headers });
        addUnrecorded(e.id, w.requests);
      }
      const m = await measured(e, () => wrk(base(e) + path, { threads: 2, connections: 64, seconds, script: join(ROOT, 'bench/wrk-json.lua'), headers }));
      const r = m.result;
      const errs = wrkErrors(r);
      const ok = errs === 0 && r.requests > 0 && alive(e);
      record({
        run: runId, round, position, metric, variant, contender: e.id, ok,
        failure: ok ? undefined : alive(e) ? `wrk errors ${JSON.stringify(r.errors)}` : `${e.id} exited`,
        requests: r.requests, errors: errs, reqPerS: r.requests / (r.durationUs / 1e6), p50Ms: r.latencyUs.p50 / 1000, p99Ms: r.latencyUs.p99 / 1000,
        cpuUsPerReq: m.cpuS !== undefined ? (m.cpuS * 1e6) / r.requests : undefined,
        cpuS: m.cpuS, rssBeforeMiB: m.rssBeforeMiB, rssPeakMiB: m.rssPeakMiB, loadAvg1: m.loadAvg1,
      });
    };
    const blob = async (round: number, position: number, metric: 'M2' | 'M3', streams: number, e: Entry) => {
      const perStream = Math.max(1, Math.round(settings.blobsPerRun / streams));
      const load = () =>
        metric === 'M2'
          ? pull(base(e) + blobPath(blobHex), BLOB_SIZE, streams, perStream, 120)
          : push(base(e), (u) => uploadPath(u, blobHex), blobFile, BLOB_SIZE, streams, perStream, 120);
      if (firstLoad(`${e.id} ${metric} ${streams}`)) {
        const w = await load();
        addUnrecorded(e.id, w.transfers);
        // Not a measurement, but a contender that fails it is worth saying; its recorded sample comes next.
        if (w.failures.length > 0) log(`  warm-up of ${e.id} ${metric} ${streams} stream(s) failed: ${w.failures.join('; ')}`);
      }
      const m = await measured<BlobResult>(e, load);
      const r = m.result;
      const ok = r.failures.length === 0 && alive(e);
      const gib = r.bytes / (1024 * MiB);
      record({
        run: runId, round, position, metric, variant: streams === 1 ? '1 stream' : `${streams} streams`, contender: e.id, ok,
        failure: ok ? undefined : alive(e) ? r.failures.join('; ') : `${e.id} exited`,
        streams, bytes: r.bytes, wallS: r.wallS, mibPerS: r.bytes / MiB / r.wallS,
        cpuSPerGiB: m.cpuS !== undefined ? m.cpuS / gib : undefined,
        faultsPerGiB: m.faults !== undefined ? m.faults / gib : undefined,
        cpuS: m.cpuS, rssBeforeMiB: m.rssBeforeMiB, rssPeakMiB: m.rssPeakMiB, loadAvg1: m.loadAvg1,
      });
    };

    // Rounds. Blobs come first, so round 1's pulls are on processes that have served no small
    // requests yet; later rounds' pulls follow the previous round's small-request bursts.
    const inOrder = (metric: Metric, round: number) => {
      const list = entries.filter((e) => e.metrics.has(metric));
      const k = round % list.length;
      return [...list.slice(k), ...list.slice(0, k)];
    };
    for (let round = 0; round < settings.rounds; round++) {
      log(`round ${round + 1} of ${settings.rounds} (load average ${loadavg()[0]!.toFixed(2)})`);
      for (const [metric, streams] of [['M2', 1], ['M2', 4], ['M3', 1], ['M3', 4]] as const) {
        for (const [i, e] of inOrder(metric, round).entries()) await blob(round, i, metric, streams, e);
      }
      for (const [i, e] of inOrder('M1', round).entries()) await small(round, i, 'M1', 'small GET', e, MANIFEST_PATH, settings.m1Seconds);
      const m5 = [lbEntry, entries.find((e) => e.id === 'harbor-lb-redis')!];
      for (const [i, e] of (round % 2 === 0 ? m5 : [...m5].reverse()).entries()) await small(round, i, 'M5', 'small GET', e, MANIFEST_PATH, settings.m5Seconds);
      for (const [i, e] of inOrder('M4', round).entries()) await small(round, i, 'M4', 'token', e, TOKEN_PATH, settings.m4Seconds);
      // Each request on a connection of its own: what handing connections to workers costs.
      for (const [i, e] of inOrder('M6', round).entries()) await small(round, i, 'M6', 'new connection', e, MANIFEST_PATH, settings.m4Seconds, ['Connection: close']);
    }
    // A second opinion on small requests from another load generator (full runs).
    if (haveHey && settings.heySeconds > 0) {
      for (const [i, e] of inOrder('hey', 0).entries()) {
        const m = await measured(e, () => hey(base(e) + MANIFEST_PATH, 64, settings.heySeconds));
        const ok = m.result.non2xx === 0 && alive(e);
        const requests = m.result.responses;
        record({
          run: runId, round: 0, position: i, metric: 'hey', variant: 'small GET', contender: e.id, ok, failure: ok ? undefined : `${m.result.non2xx} answers not 2xx`,
          requests, reqPerS: m.result.reqPerS, p50Ms: m.result.p50Ms, p99Ms: m.result.p99Ms,
          cpuUsPerReq: m.cpuS !== undefined ? (m.cpuS * 1e6) / requests : undefined, cpuS: m.cpuS, rssBeforeMiB: m.rssBeforeMiB, rssPeakMiB: m.rssPeakMiB, loadAvg1: m.loadAvg1,
        });
      }
    }

    // What harbor-lb wrote, and how much memory each process ever held.
    const hwmMiB = new Map(entries.filter((e) => e.pids.length > 0).map((e) => [e.id, e.pids.reduce((s, p) => s + statusKiB(p, 'VmHWM'), 0) / 1024]));
    const lbProcesses = [...lbIdleKiB].map(([pid, idle]) => ({ pid, idleMiB: idle / 1024, hwmMiB: statusKiB(pid, 'VmHWM') / 1024 }));
    const crashed = entries.filter((e) => !alive(e)).map((e) => e.id);
    await procs.stopAll(); // harbor-lb flushes its routing log on SIGTERM
    const lbLog = join(work, 'logs/harbor-lb.log');
    const routingLines = existsSync(lbLog) ? countLinesWith(lbLog, '"route":') : 0;
    const lbRequests =
      (unrecorded.get('harbor-lb') ?? 0) + samples.filter((s) => s.contender === 'harbor-lb').reduce((n, s) => n + (s.requests ?? (s.bytes ?? 0) / BLOB_SIZE), 0);
    facts.loadEnd = loadavg().map((x) => x.toFixed(2)).join(' ');
    facts.soakEnd = await soakRunning();
    facts.finished = new Date().toISOString();

    const report = renderReport({
      settings: { quick: settings.quick, rounds: settings.rounds, m1Seconds: settings.m1Seconds, m4Seconds: settings.m4Seconds, m5Seconds: settings.m5Seconds, blobsPerRun: settings.blobsPerRun },
      facts, samples, contenders: entries, rssStartMiB, hwmMiB, routingLines, lbRequests, crashed, jsonl: jsonl.slice(ROOT.length + 1), lbProcesses, cores,
    });
    writeFileSync(join(resultsDir, `${runId}.md`), report);
    if (settings.doc) writeDoc(join(ROOT, 'docs/benchmarks.md'), report);
    process.stdout.write(`\n${report}\n`);
    log(`raw samples: ${jsonl}${settings.doc ? '; table written to docs/benchmarks.md' : ''}`);
    const failed = samples.filter((s) => !s.ok).length;
    if (failed > 0 || crashed.length > 0) {
      process.stderr.write(`bench: ${failed} measurement(s) failed${crashed.length > 0 ? `, exited during the run: ${crashed.join(', ')}` : ''}\n`);
      return 1;
    }
    return 0;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

/** An OCI image manifest padded to exactly 2 KiB (valid JSON: harbor-lb's health check reads JSON bodies). */
function manifestJson(): string {
  const digest = () => `sha256:${randomBytes(32).toString('hex')}`;
  const doc = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(), size: 1470 },
    layers: [1, 2, 3].map((i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(), size: 1_000_000 * i })),
    annotations: { 'org.opencontainers.image.description': '' },
  };
  const pad = MANIFEST_SIZE - JSON.stringify(doc).length;
  doc.annotations['org.opencontainers.image.description'] = 'x'.repeat(pad);
  return JSON.stringify(doc);
}

export async function soakRunning(): Promise<boolean> {
  const r = await run('pgrep', ['-f', 'soak'], 5000);
  return r.stdout.split('\n').some((p) => p !== '' && Number(p) !== process.pid);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);

/** A file of `size` random bytes, written 1 MiB at a time; its SHA-256 (hex). */
function writeRandomBlob(file: string, size: number): string {
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  for (let i = 0; i < size / MiB; i++) {
    const chunk = randomBytes(MiB);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  return hash.digest('hex');
}
