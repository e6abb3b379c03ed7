/**
 * The bench's processes: started with a name, stopped whatever happens (normal end, error, Ctrl-C),
 * and read through /proc for CPU time and memory. Linux only, like the rest of the bench.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Managed {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
}

export class Procs {
  readonly #all: Managed[] = [];

  /**
   * pidFile: "pid start-time" of every process is appended to it, so bench/run.sh can stop what a
   * killed orchestrator left (and nothing else, should a pid be reused).
   */
  constructor(private readonly pidFile: string) {}

  /** A folder bench/run.sh removes should the orchestrator be killed before it does. */
  noteDir(path: string): void {
    appendFileSync(this.pidFile, `dir ${path}\n`);
  }

  /** Starts a long-lived process; its stdout and stderr go to `logFile`. */
  start(name: string, command: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Managed {
    const fd = openSync(logFile, 'a');
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    appendFileSync(this.pidFile, `${child.pid} ${startTime(child.pid)}\n`);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      child.once('error', (err) => resolve(err.message));
    });
    const m: Managed = { name, child, pid: child.pid, exited };
    this.#all.push(m);
    return m;
  }

  /** SIGTERM to one process, SIGKILL if it is still there after `graceMs`. */
  async stop(m: Managed, graceMs = 5000): Promise<void> {
    if (m.child.exitCode !== null || m.child.signalCode !== null) return;
    m.child.kill('SIGTERM');
    await Promise.race([m.exited, sleep(graceMs)]);
    if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
    await m.exited;
  }

  /** SIGTERM to everything still running, SIGKILL to what is left after `graceMs`. */
  async stopAll(graceMs = 5000): Promise<void> {
    const running = this.#all.filter((m) => m.child.exitCode === null && m.child.signalCode === null);
    for (const m of running) m.child.kill('SIGTERM');
    await Promise.race([Promise.all(running.map((m) => m.exited)), sleep(graceMs)]);
    for (const m of running) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
    await Promise.race([Promise.all(running.map((m) => m.exited)), sleep(1000)]);
  }

  /** Last resort from a synchronous 'exit' handler. */
  killAllNow(): void {
    for (const m of this.#all) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '?';
  } catch {
    return '?';
  }
}

/** Clock ticks per second of /proc/PID/stat's utime and stime. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads), in seconds; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces and parentheses: state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime (14), stime (15)
  } catch {
    return 0;
  }
}

export const cpuSecondsOf = (pids: readonly number[]) => pids.reduce((s, p) => s + cpuSeconds(p), 0);

/**
 * Minor page faults of a process so far (field 10 of /proc/PID/stat); 0 when it is gone. A proxy
 * whose allocator hands freed read buffers back to the kernel faults every page in again: about
 * 262,000 per GiB moved.
 */
export function minorFaults(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]); // minflt (10)
  } catch {
    return 0;
  }
}

export const minorFaultsOf = (pids: readonly number[]) => pids.reduce((s, p) => s + minorFaults(p), 0);

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM); 0 when it is gone. */
export function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export const rssKiBOf = (pids: readonly number[]) => pids.reduce((s, p) => s + statusKiB(p, 'VmRSS'), 0);

/** A process and all its descendants (nginx's master and workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Samples the summed VmRSS of some processes until stopped; returns the peak in KiB. */
export function sampleRss(pids: readonly number[], everyMs = 50): { stop(): number } {
  let peak = rssKiBOf(pids);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKiBOf(pids));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssKiBOf(pids));
    },
  };
}

/** Free TCP ports on 127.0.0.1 (the kernel's pick; released just before use). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` every 100 ms until it is true; throws `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Whether the harbor-lb with this admin port has `nodes` nodes healthy and its sticky store connected (for waitFor). */
export function harborLbReady(adminPort: number, nodes = 3): () => Promise<boolean> {
  return async () => {
    try {
      const status = (await (await fetch(`http://127.0.0.1:${adminPort}/-/status`)).json()) as { nodes: Array<{ state: string }>; sticky: { connected?: boolean } };
      return status.nodes.filter((n) => n.state === 'healthy').length === nodes && status.sticky.connected !== false;
    } catch {
      return false;
    }
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  wallS: number;
}

/** Runs a command to its end, killed after `timeoutMs` (every load is bounded in time). */
export function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, wallS: Number(process.hrtime.bigint() - started) / 1e9 });
    });
  });
}
