import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startProcess, type RunningProcess } from './processes.js';
import { freePort } from './servers.js';

export interface RunningHaproxy {
  port: number;
  process: RunningProcess;
  stop(): Promise<void>;
}

/**
 * A real haproxy as an L4 balancer in front of `target` (TCP mode, so TLS passes through), sending
 * a PROXY header of `version` on each connection, from the loopback address `source` so the
 * receiver can tell it from the client. Loopback only; stopped by the caller.
 */
export async function startHaproxy(dir: string, target: { host: string; port: number }, version: 1 | 2, source: string): Promise<RunningHaproxy> {
  const port = await freePort();
  const file = join(dir, `haproxy-v${version}.cfg`);
  writeFileSync(
    file,
    `global
  log stderr format raw local0 info
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind 127.0.0.1:${port}
  default_backend lb
backend lb
  server harbor-lb ${target.host}:${target.port} ${version === 1 ? 'send-proxy' : 'send-proxy-v2'} source ${source}
`,
  );
  // -db: in the foreground; -V: it says when it polls, which is when it serves.
  const process = await startProcess('haproxy', ['-f', file, '-db', '-V'], /Using \w+\(\) as the polling mechanism/);
  // It says so as it starts polling; the listening socket may lag it by a moment: connect until it answers.
  for (let attempt = 1; !(await accepts(port)); attempt++) {
    if (attempt === 50) {
      await process.stop();
      throw new Error(`haproxy did not accept on ${port}:\n${process.output()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, process, stop: () => process.stop() };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
