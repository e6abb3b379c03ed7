import { startProcess, type RunningProcess } from './processes.js';
import { freePort } from './servers.js';

export interface RedisServer {
  port: number;
  url: string;
  proc: RunningProcess;
}

/** A real redis-server on a free loopback port (or `port`, to restart one in place), no persistence. */
export async function startRedis(port?: number, extra: string[] = []): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const proc = await startProcess('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], /Ready to accept connections/);
  return { port: p, url: `redis://127.0.0.1:${p}/0`, proc };
}
