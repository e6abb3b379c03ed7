import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { startRealHarborCluster, type RealHarborCluster } from '../../test/support/real-cluster.js';
import { startRedis, type RedisServer } from '../../test/support/redis.js';
import { makeTempDir } from '../../test/support/tmp.js';
import { SoakContext, type FaultRecord, type OpCount, type OpKind, type UnretryableError } from './context.js';
import { faultPlan, runFaults } from './faults.js';
import { instanceConfig, startInstance, type LbInstance } from './instances.js';
import { summarizeLog, type LogSummary } from './log-summary.js';
import { hostileClient } from './hostile.js';
import { duplicateHostClient, slowBodyClient } from './misbehave.js';
import { readPinEvictions, sampleInstances, type InstanceSample, type Sample } from './sampler.js';
import { seededRandom, type LatencySummary, type SoakRoute } from './stats.js';
import { SimulatedUser, sleep } from './user.js';

export interface SoakOptions {
  durationMs: number;
  users: number;
  /** JSON lines of raw records (samples, retries, faults, errors). */
  out: string;
  /** Where the instances' logs go (kept after the run for evidence). */
  logPrefix: string;
  sampleEveryMs?: number;
  /** Retries a client allows itself per step. */
  maxRetries?: number;
  seed?: number;
  /** Ends the run early (SIGINT). */
  interrupt?: AbortSignal;
  progress?: (line: string) => void;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryMiB: number;
  freeMemoryMiB: number;
  node: string;
  loadBefore: number[];
  loadAfter: number[];
  commit: string;
}

export interface SoakResult {
  options: { durationMs: number; users: number; maxRetries: number; sampleEveryMs: number; seed: number };
  machine: Machine;
  startedAt: string;
  /** Seconds of traffic actually run. */
  ranS: number;
  interrupted: boolean;
  faults: FaultRecord[];
  ops: Record<OpKind, OpCount>;
  totals: ReturnType<SoakContext['totals']>;
  retries: Record<string, number>;
  retryTimes: number[];
  transportErrors: Record<string, number>;
  requests: Record<string, number>;
  unretryable: UnretryableError[];
  latency: Record<SoakRoute, LatencySummary>;
  slowBody: Record<string, number>;
  slowBodyCuts: SoakContext['slowBodyCuts'];
  duplicateHost: Record<string, number>;
  /** The hostile client (hostile.ts): per shape, what it was answered. */
  hostile: Record<string, Record<string, number>>;
  /** What the hostile client needed for its shapes (its token, its own blob), by outcome. */
  hostileSetup: Record<string, number>;
  hostileSlowReads: SoakContext['hostileSlowReads'];
  /** `harbor_lb_pin_evictions_total` of each instance at the end of the run, by space (undefined: /metrics unreadable). */
  pinEvictions: Array<{ name: string; evictions?: Record<string, number> }>;
  idleBefore: InstanceSample[];
  idleAfter: InstanceSample[];
  idleAfterWaitS: number;
  samples: Sample[];
  logs: LogSummary[];
  logFiles: string[];
  out: string;
}

/** Fds an idle instance may hold above its idle count before the run and still count as flat. */
export const IDLE_FD_SLACK = 4;

/**
 * The soak: three real registries behind simulated Harbor cores, one Redis, two harbor-lb
 * processes; simulated users push, pull, log in and browse through both instances while nodes die,
 * freeze and Redis restarts, two clients misbehave and a hostile one sends the shapes that convicted
 * healthy nodes before issue 18. Bounded in time; cleans up everything.
 */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const sampleEveryMs = o.sampleEveryMs ?? (o.durationMs < 120_000 ? 2000 : 5000);
  const maxRetries = o.maxRetries ?? 3;
  const seed = o.seed ?? 1;
  const progress = o.progress ?? (() => undefined);
  const loadBefore = loadavg();
  const tmp = makeTempDir('soak');
  const children: Array<() => number | undefined> = [];
  // If this process dies, its children must not outlive it.
  const killChildren = () => {
    for (const pidOf of children) {
      const pid = pidOf();
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  process.on('exit', killChildren);

  let redis: { current: RedisServer } | undefined;
  let cluster: RealHarborCluster | undefined;
  const instances: LbInstance[] = [];
  let faultCleanup: (() => void) | undefined;
  const users: SimulatedUser[] = [];
  try {
    progress(`soak: starting Redis, 3 registries with their cores, 2 harbor-lb instances (work dir ${tmp.dir})`);
    redis = { current: await startRedis() };
    const r = redis;
    children.push(() => r.current.proc.child.pid);
    cluster = await startRealHarborCluster(tmp.dir, 3);
    const c = cluster;
    for (let i = 0; i < 3; i++) children.push(() => c.registries[i]?.process.child.pid);
    // What clients type: both instances answer to one name, as behind DNS round robin.
    const publicUrl = 'http://hub.soak.test:8070';
    for (let i = 0; i < 2; i++) {
      const name = `lb${i + 1}`;
      const cfg = instanceConfig({
        nodes: cluster.nodes.map((n, k) => ({ name: `h${k + 1}`, url: n.url })),
        rootCert: cluster.keys.certFile,
        redisUrl: redis.current.url,
        publicUrl,
      });
      const inst = await startInstance(name, join(tmp.dir, `${name}.json`), cfg, `${o.logPrefix}.${name}.log`);
      instances.push(inst);
      children.push(() => inst.pid);
    }
    await waitAllHealthy(instances, 30_000);
    await new Promise((res) => setTimeout(res, 3000));
    const idleBefore = await sampleInstances(instances, false);
    progress(`soak: cluster up; idle before: ${idleBefore.map((s) => `${s.name} rss ${mb(s.rssKb)} fds ${s.fds}`).join(', ')}`);

    // ---- traffic --------------------------------------------------------------------------
    const abort = new AbortController();
    const stopMisbehaving = new AbortController();
    // Every request and every sleep of every user listens on these: no leak, just many listeners.
    setMaxListeners(0, abort.signal, stopMisbehaving.signal);
    const onInterrupt = () => {
      abort.abort();
      stopMisbehaving.abort();
    };
    o.interrupt?.addEventListener('abort', onInterrupt, { once: true });
    const start = Date.now();
    const ctx = new SoakContext(
      instances.map((i) => ({ name: i.name, port: i.proxyPort })),
      publicUrl,
      o.out,
      start + o.durationMs,
      abort.signal,
      maxRetries,
    );
    ctx.emit('start', { durationMs: o.durationMs, users: o.users, instances: instances.map((i) => ({ name: i.name, pid: i.pid, port: i.proxyPort })), idleBefore });

    const rand = seededRandom(seed);
    for (let i = 0; i < o.users; i++) users.push(new SimulatedUser(i, ctx, seededRandom(Math.floor(rand() * 2 ** 32))));
    const userRuns = users.map((u) => u.run());
    const misbehaving = [
      slowBodyClient(ctx, stopMisbehaving.signal),
      duplicateHostClient(ctx, stopMisbehaving.signal, o.durationMs < 120_000 ? 3000 : 5000),
      hostileClient(ctx, stopMisbehaving.signal),
    ];
    const plan = faultPlan(o.durationMs);
    const faults = runFaults(ctx, { cluster, redis }, plan, o.durationMs, abort.signal);
    faultCleanup = faults.cleanup;

    const samples: Sample[] = [];
    const takeSample = async () => {
      const s: Sample = { t: ctx.t(), load1: Math.round(loadavg()[0]! * 100) / 100, instances: await sampleInstances(instances, true), totals: ctx.totals(), latency: ctx.latency.takeInterval() };
      samples.push(s);
      ctx.emit('sample', s as unknown as Record<string, unknown>);
      progress(
        `[${s.t.toFixed(1).padStart(6)} s] ops ${s.totals.ops} ok ${s.totals.ok} retries ${s.totals.retries} unretryable ${s.totals.unretryable} | ${s.instances
          .map((x) => `${x.name} rss ${mb(x.rssKb)} fds ${x.fds} [${Object.values(x.nodes ?? {}).map((st) => st[0]).join('')}]`)
          .join(' | ')}`,
      );
    };
    // Samples until the traffic ends; each bounded (3 s status timeout), the loop by count and clock.
    const maxSamples = Math.ceil(o.durationMs / sampleEveryMs) + 2;
    for (let k = 1; k <= maxSamples && !abort.signal.aborted; k++) {
      const next = start + k * sampleEveryMs;
      if (next > ctx.deadline) break;
      await sleep(next - Date.now(), abort.signal).catch(() => undefined);
      if (abort.signal.aborted) break;
      await takeSample();
    }
    const waitUntil = Math.max(0, ctx.deadline - Date.now());
    await sleep(waitUntil, abort.signal).catch(() => undefined);
    stopMisbehaving.abort();
    // Operations under way finish (each bounded by its timeouts and retries); past 90 s they are abandoned.
    const grace = setTimeout(() => abort.abort(), 90_000);
    await Promise.all([...userRuns, ...misbehaving]);
    clearTimeout(grace);
    abort.abort();
    await faults.done;
    faults.cleanup();
    const ranS = ctx.t();
    await takeSample();
    progress(`soak: traffic over after ${ranS} s; waiting for the instances to go idle`);

    // ---- idle after: clients gone, the instances' connections should close ----------------
    for (const u of users) u.close();
    const idleStart = Date.now();
    let idleAfter = await sampleInstances(instances, false);
    for (let k = 0; k < 30; k++) {
      const flat = idleAfter.every((s, i) => (s.fds ?? Infinity) <= (idleBefore[i]?.fds ?? 0) + IDLE_FD_SLACK);
      if (flat && Date.now() - idleStart >= 3000) break;
      await new Promise((res) => setTimeout(res, 1000));
      idleAfter = await sampleInstances(instances, false);
    }
    const idleAfterWaitS = Math.round((Date.now() - idleStart) / 100) / 10;
    ctx.emit('idle_after', { idleAfter, waitedS: idleAfterWaitS });
    progress(`soak: idle after ${idleAfterWaitS} s: ${idleAfter.map((s) => `${s.name} rss ${mb(s.rssKb)} fds ${s.fds}`).join(', ')}`);

    // What the instances pushed out of their pin spaces over the whole run (client traffic must evict no upload or session pin).
    const pinEvictions = await readPinEvictions(instances);
    ctx.emit('pin_evictions', { pinEvictions });
    for (const inst of instances) await inst.stop();
    const logs = await Promise.all(instances.map((i) => summarizeLog(i.name, i.logFile, start)));
    const result: SoakResult = {
      options: { durationMs: o.durationMs, users: o.users, maxRetries, sampleEveryMs, seed },
      machine: machine(loadBefore),
      startedAt: new Date(start).toISOString(),
      ranS,
      interrupted: o.interrupt?.aborted ?? false,
      faults: ctx.faults,
      ops: Object.fromEntries(ctx.ops) as Record<OpKind, OpCount>,
      totals: ctx.totals(),
      retries: ctx.retries.toObject(),
      retryTimes: ctx.retryTimes,
      transportErrors: ctx.transportErrors.toObject(),
      requests: ctx.requests.toObject(),
      unretryable: ctx.unretryable,
      latency: ctx.latency.total(),
      slowBody: ctx.slowBody.toObject(),
      slowBodyCuts: ctx.slowBodyCuts,
      duplicateHost: ctx.duplicateHost.toObject(),
      hostile: Object.fromEntries([...ctx.hostile].map(([shape, t]) => [shape, t.toObject()])),
      hostileSetup: ctx.hostileSetup.toObject(),
      hostileSlowReads: ctx.hostileSlowReads,
      pinEvictions,
      idleBefore,
      idleAfter,
      idleAfterWaitS,
      samples,
      logs,
      logFiles: instances.map((i) => i.logFile),
      out: o.out,
    };
    ctx.emit('summary', { ...result, samples: undefined } as unknown as Record<string, unknown>);
    return result;
  } finally {
    faultCleanup?.();
    for (const u of users) u.close();
    for (const inst of instances) await inst.stop().catch(() => undefined);
    await cluster?.close().catch(() => undefined);
    await redis?.current.proc.stop().catch(() => undefined);
    killChildren();
    process.off('exit', killChildren);
    tmp.remove();
  }
}

/** Waits (bounded) until every instance reports every node healthy. */
async function waitAllHealthy(instances: LbInstance[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: InstanceSample[] = [];
  while (Date.now() < deadline) {
    last = await sampleInstances(instances, true);
    if (last.every((s) => s.nodes && Object.values(s.nodes).length === 3 && Object.values(s.nodes).every((st) => st === 'healthy') && s.redisConnected)) return;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`the instances did not see every node healthy within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

function machine(loadBefore: number[]): Machine {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dirty !== '') commit += ' (with uncommitted changes)';
  } catch {
    /* not a git checkout */
  }
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    freeMemoryMiB: Math.round(freemem() / 1024 / 1024),
    node: process.version,
    loadBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
    loadAfter: loadavg().map((x) => Math.round(x * 100) / 100),
    commit,
  };
}

export function mb(kb: number | undefined): string {
  return kb === undefined ? '?' : `${(kb / 1024).toFixed(1)} MiB`;
}
