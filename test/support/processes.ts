import { spawn, type ChildProcess } from 'node:child_process';

export interface RunningProcess {
  child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it lingers; resolves once it has exited. */
  stop(): Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts a program and resolves once it prints `ready` (its own "listening" line), so tests wait
 * on the event itself rather than on a guess of how long start-up takes. Rejects if it exits first
 * or stays silent past `timeoutMs`.
 */
export function startProcess(cmd: string, args: string[], ready: RegExp, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunningProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle: RunningProcess = {
    child,
    output: () => out,
    kill: (signal) => {
      child.kill(signal);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`${cmd} printed no ready line within ${opts.timeoutMs ?? 15000} ms:\n${out}`)), opts.timeoutMs ?? 15000);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void handle.stop().then(() => reject(err));
    };
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (!settled && ready.test(out)) {
        settled = true;
        clearTimeout(timer);
        resolve(handle);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`${cmd} exited (${code ?? signal}) before it was ready:\n${out}`)));
  });
}
