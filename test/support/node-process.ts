import { fileURLToPath } from 'node:url';
import { startProcess, type RunningProcess } from './processes.js';

const MAIN = fileURLToPath(new URL('./node-process-main.js', import.meta.url));

export interface NodeProcess {
  url: string;
  port: number;
  proc: RunningProcess;
}

/** A Harbor-like node in a child process (256 KiB GETs, health JSON); `port` to restart one in place. */
export async function startNodeProcess(name: string, port = 0): Promise<NodeProcess> {
  const proc = await startProcess(process.execPath, [MAIN, String(port), name], /listening \d+/);
  const bound = Number(/listening (\d+)/.exec(proc.output())![1]);
  return { url: `http://127.0.0.1:${bound}`, port: bound, proc };
}
