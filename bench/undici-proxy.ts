/**
 * The reference for CPU per small request: a minimal HTTP reverse proxy in Node, undici Pool per
 * backend (round robin), node:http in front, `pool.stream()` into the response: what harbor-lb's
 * request path does, without anything else harbor-lb does. With WORKERS > 1 it forks that many
 * copies sharing the port (reusePort), as harbor-lb's request workers do.
 *
 *   node dist/bench/undici-proxy.js PORT WORKERS BACKEND_PORT [BACKEND_PORT...]
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { Pool } from 'undici';

const [portArg, workersArg, ...backendArgs] = process.argv.slice(2);
const port = Number(portArg);
const workers = Number(workersArg);
const backends = backendArgs.map(Number);
if (!Number.isInteger(port) || !Number.isInteger(workers) || backends.length === 0) {
  process.stderr.write('usage: undici-proxy.js PORT WORKERS BACKEND_PORT [BACKEND_PORT...]\n');
  process.exit(2);
}

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'proxy-connection', 'te', 'trailer']);

if (workers > 1 && process.env.UNDICI_PROXY_WORKER === undefined) {
  // The parent only forks and waits: the workers serve.
  const children = Array.from({ length: workers }, () => fork(process.argv[1]!, process.argv.slice(2), { env: { ...process.env, UNDICI_PROXY_WORKER: '1' } }));
  const stop = () => children.forEach((c) => c.kill('SIGTERM'));
  process.once('SIGTERM', stop).once('SIGINT', stop);
} else {
  const pools = backends.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128, pipelining: 1 }));
  let next = 0;
  const server = http.createServer((req, res) => {
    const pool = pools[next++ % pools.length]!;
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    pool
      .stream({ path: req.url!, method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, ({ statusCode, headers: h }) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v as string | string[];
        res.writeHead(statusCode, out);
        return res;
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
  server.listen({ port, host: '127.0.0.1', reusePort: workers > 1 });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    void Promise.all(pools.map((p) => p.close())).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop).once('SIGINT', stop);
}
