/**
 * `npm run bench -- --instructions [--against DIST]`: the instructions harbor-lb's request path
 * runs per small GET, counted by valgrind's callgrind on the process's main thread. Counts, not
 * seconds: they move far less with what else the machine is doing, so a change of a few percent
 * in the request path can be read off one run where wall-clock rounds swing by ±20% (a shared VM).
 * harbor-lb runs as one process (`proxy.workers: 1`), under wrk with one connection; counting is
 * switched on only after a warm-up (the JIT's tiers settled), under load for a fixed time, then
 * with no request (what the process does anyway: timers, health checks every 60 s here, taken
 * off at that rate). With --against, another build (its dist folder, e.g. a worktree of the base
 * commit) is measured in alternation with this one. What a request costs in the kernel (system
 * calls) is not counted: callgrind sees user space only. Loopback only; every process is the
 * bench's own and stopped after its round.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { harborLbYaml, MANIFEST_PATH } from './lib/configs.js';
import { wrk } from './lib/load.js';
import { freePorts, harborLbReady, type Procs, run, waitFor } from './lib/procs.js';
import { median } from './lib/stats.js';

export interface InstructionsContext {
  procs: Procs;
  work: string;
  /** This build's dist/src/cli.js. */
  cli: string;
  root: string;
  backends: number[];
  rootCert: string;
  rounds: number;
  /** Seconds of load before counting, counted with no load (the background), and counted under load. */
  warmSeconds: number;
  idleSeconds: number;
  countSeconds: number;
  /** Another build's dist folder, measured in alternation with this one. */
  against?: string;
  /** This build's commit, for the report (machineFacts). */
  commit: string;
  log: (msg: string) => void;
}

/**
 * One request at a time: with more, how many requests a turn of the event loop handles together
 * depends on how fast the process runs under valgrind, and that moved the count per request by
 * ±4% between runs of one build (8 connections). What a turn shared by many requests saves is
 * left to the wall-clock rounds. Work batched in time (routing lines go out every 20 ms) still
 * spreads over however many requests came meanwhile: rounds of one build agree within 2-5%, the
 * closer the quieter the machine; read medians.
 */
const CONNECTIONS = 1;

type Kind = 'this' | 'against';

interface Sample {
  build: string;
  /** This build, or the one it is measured against. */
  kind: Kind;
  requests: number;
  /** Counted under load, less the background. */
  instructions: number;
  /** What the process ran with no request, over as long as the load lasted. */
  background: number;
  /** harbor-lb's own functions: instructions per request, their callees included. */
  functions: Map<string, number>;
}

export async function runInstructions(c: InstructionsContext): Promise<string> {
  for (const tool of ['valgrind', 'callgrind_control']) {
    if ((await run('sh', ['-c', `command -v ${tool}`], 5000)).code !== 0) throw new Error(`${tool} is missing: run bench/setup.sh (Debian package valgrind)`);
  }
  const builds: Array<{ name: string; kind: Kind; cli: string }> = [{ name: `this build (${c.commit})`, kind: 'this', cli: c.cli }];
  if (c.against !== undefined) {
    const cli = join(c.against, 'src/cli.js');
    if (!existsSync(cli)) throw new Error(`--against ${c.against}: no src/cli.js there (give a built dist folder)`);
    builds.unshift({ name: `against (${c.against})`, kind: 'against', cli });
  }
  const samples: Sample[] = [];
  for (let round = 1; round <= c.rounds; round++) {
    for (const b of builds) {
      const s = await measure(c, b.name, b.kind, b.cli, round);
      samples.push(s);
      c.log(`instructions: round ${round}, ${b.name}: ${Math.round(s.instructions / s.requests).toLocaleString('en-US')} per request (${s.requests} requests counted; background ${Math.round(s.background / s.requests).toLocaleString('en-US')} per request taken off)`);
    }
  }
  return render(samples, builds.map((b) => b.name), c);
}

async function measure(c: InstructionsContext, build: string, kind: Kind, cli: string, round: number): Promise<Sample> {
  const [port, admin] = await freePorts(2);
  const tag = `instructions-${round}-${kind}`;
  const conf = join(c.work, `${tag}.yaml`);
  // One process, the bench's usual config; health checks rarer, so what is counted is requests.
  const yaml = harborLbYaml({ port: port!, adminPort: admin!, backends: c.backends, rootCert: c.rootCert, store: 'memory', workers: 1 });
  if (!yaml.includes('interval: 2s')) throw new Error('bench/lib/configs.ts no longer sets the health interval this mode lengthens');
  writeFileSync(conf, yaml.replace('interval: 2s', 'interval: 60s'));
  const outDir = join(c.work, tag);
  const nodeBin = process.execPath;
  const lb = c.procs.start(
    `harbor-lb under callgrind (${build})`,
    'valgrind',
    ['--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', '--dump-line=no', '--compress-strings=no', `--callgrind-out-file=${outDir}.%p`, nodeBin, '--perf-basic-prof', '--max-semi-space-size=16', cli, 'serve', '--config', conf],
    join(c.work, `logs/${tag}.log`),
  );
  try {
    await waitFor(`${tag}: all three nodes healthy`, harborLbReady(admin!), 180_000);
    const url = `http://127.0.0.1:${port}${MANIFEST_PATH}`;
    const script = join(c.root, 'bench/wrk-json.lua');
    await wrk(url, { threads: 1, connections: CONNECTIONS, seconds: c.warmSeconds, script });
    // First under load, then what the process does with no request (timers, health checks) over
    // as long; each dump zeroes the counts. The idle rate, times the loaded window, is taken off
    // the loaded count. Idle first would not do: an idle V8 lets code go, and the load after it
    // ran compilations again.
    await control(['-i', 'on', String(lb.pid)]);
    const loadedFrom = performance.now();
    const counted = await wrk(url, { threads: 1, connections: CONNECTIONS, seconds: c.countSeconds, script });
    await control(['-d', String(lb.pid)]);
    const idleFrom = performance.now();
    await sleep(c.idleSeconds * 1000);
    await control(['-i', 'off', String(lb.pid)]);
    const idleTo = performance.now();
    await control(['-d', String(lb.pid)]);
    const text = readFileSync(mainThreadDump(c.work, tag, lb.pid, 1), 'utf8');
    const idle = totalOf(readFileSync(mainThreadDump(c.work, tag, lb.pid, 2), 'utf8'));
    const background = (idle * (idleFrom - loadedFrom)) / (idleTo - idleFrom);
    return { build, kind, requests: counted.requests, instructions: totalOf(text) - background, background, functions: ownFunctions(text, lb.pid, counted.requests) };
  } finally {
    await c.procs.stop(lb, 20_000);
    // What --perf-basic-prof wrote for this process (megabytes per round).
    rmSync(`/tmp/perf-${lb.pid}.map`, { force: true });
  }
}

async function control(args: string[]): Promise<void> {
  const r = await run('callgrind_control', args, 60_000);
  if (r.code !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

/** The dump callgrind_control -d wrote for the main thread: <out>.<pid>.<part>-01 (thread 1). */
function mainThreadDump(work: string, tag: string, pid: number, part: number): string {
  const file = join(work, `${tag}.${pid}.${part}-01`);
  if (!existsSync(file)) throw new Error(`no callgrind dump ${part} for the main thread of ${pid} in ${work}`);
  return file;
}

function totalOf(dump: string): number {
  const total = /^totals: (\d+)/m.exec(dump);
  if (total === null) throw new Error('a callgrind dump without totals');
  return Number(total[1]);
}

/**
 * Inclusive instructions per request of harbor-lb's own functions (dist/src), named from the
 * JIT's map (--perf-basic-prof: /tmp/perf-PID.map). callgrind names code it has no symbol for by
 * its address; a function's inclusive cost is on the lines after its "fn=" that name no callee.
 */
function ownFunctions(text: string, pid: number, requests: number): Map<string, number> {
  const out = new Map<string, number>();
  const mapFile = `/tmp/perf-${pid}.map`;
  if (!existsSync(mapFile)) return out;
  const entries = readFileSync(mapFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('/dist/src/'))
    .map((l) => {
      const [start, size, ...name] = l.split(' ');
      return { start: parseInt(start!, 16), end: parseInt(start!, 16) + parseInt(size!, 16), name: name.join(' ') };
    });
  // The last entry holding the address: V8 may put new code where old code was.
  const nameOf = (addr: number) => {
    for (let i = entries.length - 1; i >= 0; i--) if (addr >= entries[i]!.start && addr < entries[i]!.end) return entries[i]!.name;
    return undefined;
  };
  // callgrind's format (strings not compressed): "fn=NAME" opens a function's block; its cost
  // lines ("POSITION COST") are its own, except the one after "calls=", which is that call's
  // inclusive cost.
  let current: string | undefined;
  let afterCall = false;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      current = line.slice(3);
      afterCall = false;
      continue;
    }
    if (line.startsWith('calls=')) {
      afterCall = true;
      continue;
    }
    // A cost line's position is a number, a relative one (+N, -N), or "*" (the same as before).
    const cost = /^(?:\*|[+-]?\d+) (\d+)$/.exec(line);
    if (cost === null || current === undefined) continue;
    const n = Number(cost[1]);
    const into = afterCall ? inclusive : self;
    into.set(current, (into.get(current) ?? 0) + n);
    afterCall = false;
  }
  for (const [fn, n] of self) inclusive.set(fn, (inclusive.get(fn) ?? 0) + n);
  for (const [fn, n] of inclusive) {
    const addr = /0x([0-9a-f]+)/.exec(fn);
    const name = addr === null ? undefined : nameOf(parseInt(addr[1]!, 16));
    if (name === undefined) continue;
    // "JS:*'requestHead file:///.../dist/src/nodes/read-pool.js:427:21" -> "requestHead (nodes/read-pool)"
    const m = /JS:\S?'?(\S*) .*\/dist\/src\/(.*)\.js/.exec(name);
    const key = m === null ? name : `${m[1] || '(anonymous)'} (${m[2]})`;
    out.set(key, (out.get(key) ?? 0) + n / requests);
  }
  return out;
}

function render(samples: Sample[], builds: string[], c: InstructionsContext): string {
  const per = (s: Sample) => s.instructions / s.requests;
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '#### Instructions per small GET (`npm run bench -- --instructions`)',
    '',
    `harbor-lb as one process (\`proxy.workers: 1\`) under valgrind's callgrind, its main thread's instructions while wrk (1 thread, 1 connection: one request at a time) asks for the 2 KiB manifest: ${c.warmSeconds} s of warm-up, then ${c.countSeconds} s counted under load and ${c.idleSeconds} s with no request after it (timers, health checks: taken off at that rate), per round. User space only (a request's system calls are the kernel's).`,
    '',
    `| build | ${samples.filter((s) => s.build === builds[0]).map((_, i) => `round ${i + 1}`).join(' | ')} | median |`,
    `|---|${samples.filter((s) => s.build === builds[0]).map(() => '---:').join('|')}|---:|`,
  ];
  const medians = new Map<string, number>();
  for (const b of builds) {
    const mine = samples.filter((s) => s.build === b);
    const m = median(mine.map(per))!;
    medians.set(b, m);
    lines.push(`| ${b} | ${mine.map((s) => fmt(per(s))).join(' | ')} | ${fmt(m)} |`);
  }
  if (builds.length === 2) {
    const [a, t] = [medians.get(builds[0]!)!, medians.get(builds[1]!)!];
    lines.push('', `This build runs ${Math.abs((t / a - 1) * 100).toFixed(1)}% ${t <= a ? 'fewer' : 'more'} instructions per request than the other, median against median.`);
  }
  // Where this build's instructions go: its own functions, callees included, from its last round.
  const last = samples.filter((s) => s.kind === 'this').at(-1);
  if (last !== undefined && last.functions.size > 0) {
    lines.push('', "This build's own functions with the most instructions per request, their callees included (last round):", '', '| function (file under src/) | per request |', '|---|---:|');
    for (const [fn, n] of [...last.functions].sort((x, y) => y[1] - x[1]).slice(0, 15)) lines.push(`| ${fn} | ${fmt(n)} |`);
  }
  return lines.join('\n') + '\n';
}
