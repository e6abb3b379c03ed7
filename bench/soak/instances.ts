import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processTree } from '../lib/procs.js';

/** A harbor-lb `serve` child process, its log going to a file so RSS and fds are its own. */
export interface LbInstance {
  name: string;
  pid: number;
  child: ChildProcess;
  proxyPort: number;
  adminUrl: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface InstanceConfig {
  nodes: Array<{ name: string; url: string }>;
  rootCert: string;
  redisUrl: string;
  publicUrl: string;
}

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/**
 * The config both instances run: traffic and admin on port 0 (the `listening` line says where),
 * one Redis sticky store shared by both, active health checks every second, the cluster's root.crt.
 * Written as JSON, which the YAML loader reads as it is.
 */
export function instanceConfig(c: InstanceConfig): Record<string, unknown> {
  return {
    listen: { address: '127.0.0.1', port: 0 },
    publicUrl: c.publicUrl,
    nodes: c.nodes,
    token: { rootCert: c.rootCert },
    health: { path: '/api/v2.0/health', interval: '1s' },
    sticky: { store: 'redis', redis: { url: c.redisUrl, keyPrefix: 'harbor-lb-soak:' } },
    admin: { address: '127.0.0.1', port: 0 },
    log: { level: 'info' },
  };
}

/** Starts `node dist/src/cli.js serve --config FILE` and waits (bounded) for its `listening` and `redis_connected` lines. */
export async function startInstance(name: string, configFile: string, config: Record<string, unknown>, logFile: string): Promise<LbInstance> {
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const listening = await waitForLine(logFile, child, (l) => l.event === 'listening', 20_000);
    await waitForLine(logFile, child, (l) => l.event === 'redis_connected', 20_000);
    const proxyUrl = new URL(String(listening.proxy));
    return { name, pid: child.pid!, child, proxyPort: Number(proxyUrl.port), adminUrl: String(listening.admin), logFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls the log file every 100 ms for a JSON line matching `match`; fails if the process exits or time runs out. */
async function waitForLine(file: string, child: ChildProcess, match: (l: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const l = JSON.parse(line) as Record<string, unknown>;
          if (match(l)) return l;
        } catch {
          /* a line being written */
        }
      }
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`harbor-lb exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${existsSync(file) ? readFileSync(file, 'utf8').slice(-4000) : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`harbor-lb wrote no matching line to ${file} within ${timeoutMs} ms`);
}

/**
 * RSS (kB), open file descriptors and CPU time used so far (s) of a harbor-lb instance, from /proc:
 * the process and its request workers (proxy.workers), added up.
 */
export function procUsage(pid: number): { rssKb: number; fds: number; cpuS: number } | undefined {
  const own = oneProcUsage(pid);
  if (own === undefined) return undefined;
  for (const child of processTree(pid).filter((p) => p !== pid)) {
    const u = oneProcUsage(child);
    if (u === undefined) continue;
    own.rssKb += u.rssKb;
    own.fds += u.fds;
    own.cpuS += u.cpuS;
  }
  return own;
}

function oneProcUsage(pid: number): { rssKb: number; fds: number; cpuS: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks (100/s).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(f[11]) + Number(f[12])) / 100;
    return { rssKb: rss ? Number(rss[1]) : 0, fds, cpuS };
  } catch {
    return undefined;
  }
}

