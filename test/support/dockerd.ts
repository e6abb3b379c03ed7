import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { startProcess, type RunningProcess } from './processes.js';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A Docker engine of the test's own (harbor-facts.md): its own data, exec root and socket, no networking set-up. */
export interface Dockerd {
  /** The environment that points docker clients (docker, docker-compose) at this engine. */
  env: NodeJS.ProcessEnv;
  /** Runs the docker CLI; `stdin` may be a stream (`docker import -` of a large layer), piped with backpressure. */
  docker(args: string[], stdin?: string | Readable, timeoutMs?: number): Promise<DockerResult>;
  stop(): Promise<void>;
}

/**
 * Starts `dockerd` as root with --iptables=false --bridge=none and folders inside `dir` (the
 * exec root, which holds sockets, under /tmp to keep its path short). Resolves with the reason
 * instead when it cannot run here (not root, not installed, or it fails to start), so the caller
 * skips with that message.
 */
export async function startDockerd(dir: string, opts: { prefix?: string[] } = {}): Promise<Dockerd | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: 'dockerd needs root' };
  const execRoot = mkdtempSync('/tmp/dx-');
  const socket = join(execRoot, 'd.sock');
  const config = join(dir, 'docker-config');
  mkdirSync(config, { recursive: true });
  let proc: RunningProcess;
  try {
    // `prefix` runs dockerd through another command (`nsenter --net=…`), which execs it in place.
    const [cmd, ...pre] = [...(opts.prefix ?? []), 'dockerd'];
    proc = await startProcess(
      cmd!,
      [...pre, '--iptables=false', '--ip6tables=false', '--bridge=none', '--data-root', join(dir, 'docker-data'), '--exec-root', execRoot, '--pidfile', join(execRoot, 'd.pid'), '-H', `unix://${socket}`],
      /API listen on/,
      { timeoutMs: 60_000 },
    );
  } catch (err) {
    rmSync(execRoot, { recursive: true, force: true });
    return { skip: `dockerd cannot start here: ${(err as Error).message.split('\n')[0]}` };
  }
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: config };
  return {
    env,
    docker: (args, stdin, timeoutMs = 300_000) =>
      new Promise((resolve) => {
        const child = execFile('docker', args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
          resolve({ code, stdout, stderr });
        });
        if (typeof stdin === 'object') stdin.pipe(child.stdin!);
        else child.stdin?.end(stdin);
      }),
    async stop() {
      await proc.stop();
      // dockerd leaves the host network namespace it bind-mounted for --network host containers
      // (netns/default) mounted when it exits; the folder cannot be removed until it is unmounted.
      for (const mountPoint of mountsUnder(execRoot)) execFileSync('umount', ['-l', mountPoint]);
      rmSync(execRoot, { recursive: true, force: true });
    },
  };
}

/** Mount points at or below `dir`, deepest first (/proc/self/mounts escapes spaces as \\040). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}
