/**
 * The ceiling: a bare socket-to-socket relay in Node, no HTTP parsing at all. Each client
 * connection is piped to a backend chosen round robin (keep-alive requests on it stay on that
 * backend). What this costs per GiB is what Node's streams and sockets cost, before any proxy logic.
 *
 *   node dist/bench/relay.js PORT BACKEND_PORT [BACKEND_PORT...]
 */
import { createServer, connect, type Socket } from 'node:net';
import { raiseMallocThresholds } from '../src/util/malloc-thresholds.js';

const [portArg, ...backendArgs] = process.argv.slice(2);
const port = Number(portArg);
const backends = backendArgs.map(Number);
if (!Number.isInteger(port) || backends.length === 0 || backends.some((p) => !Number.isInteger(p))) {
  process.stderr.write('usage: relay.js PORT BACKEND_PORT [BACKEND_PORT...]\n');
  process.exit(2);
}

// The same allocator setting harbor-lb makes at start-up, so the ceiling is the runtime's best.
raiseMallocThresholds();

let next = 0;
const open = new Set<Socket>();
const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: '127.0.0.1', port: backends[next++ % backends.length]!, noDelay: true });
  open.add(client).add(upstream);
  const close = () => {
    client.destroy();
    upstream.destroy();
    open.delete(client);
    open.delete(upstream);
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`relay listening on 127.0.0.1:${port}\n`));

const stop = () => {
  server.close();
  for (const s of open) s.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop).on('SIGINT', stop);
