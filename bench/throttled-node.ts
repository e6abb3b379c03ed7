/**
 * A registry node for the coalescing bench: serves one blob by digest (GET and HEAD, with
 * Docker-Content-Digest), every GET of the process sharing one read budget of RATE bytes a
 * second (busy shared storage: the more pulls at once, the slower each). It counts what it sent,
 * on GET /stats.
 *
 *   node dist/bench/throttled-node.js PORT FILE DIGEST RATE_BYTES_PER_S
 */
import { openSync, readSync, statSync } from 'node:fs';
import http from 'node:http';

const [portArg, file, digest, rateArg] = process.argv.slice(2);
const port = Number(portArg);
const rate = Number(rateArg);
if (!Number.isInteger(port) || file === undefined || digest === undefined || !(rate > 0)) {
  process.stderr.write('usage: throttled-node.js PORT FILE DIGEST RATE_BYTES_PER_S\n');
  process.exit(2);
}
const size = statSync(file).size;
const fd = openSync(file, 'r');
const CHUNK = 64 * 1024;
const stats = { gets: 0, heads: 0, bytes: 0 };

/** The shared read budget: a token bucket refilled every 10 ms, its turns handed out in arrival order. */
let budget = 0;
const waiting: Array<() => void> = [];
setInterval(() => {
  budget = Math.min(budget + rate / 100, rate / 10);
  while (waiting.length > 0 && budget >= CHUNK) {
    budget -= CHUNK;
    waiting.shift()!();
  }
}, 10).unref();
/** A chunk's worth of the budget: at once when there is some and nobody waits ahead, else in turn. */
const turn = (): Promise<void> | undefined => {
  if (waiting.length === 0 && budget >= CHUNK) {
    budget -= CHUNK;
    return undefined;
  }
  return new Promise<void>((resolve) => waiting.push(resolve));
};

const server = http.createServer((req, res) => {
  req.resume();
  if (req.url === '/stats') return void res.end(JSON.stringify(stats));
  if (!req.url?.endsWith(`/blobs/${digest}`)) return void res.writeHead(404).end();
  const head = { 'content-type': 'application/octet-stream', 'content-length': size, 'docker-content-digest': digest };
  if (req.method === 'HEAD') {
    stats.heads++;
    res.writeHead(200, head);
    return void res.end();
  }
  stats.gets++;
  res.writeHead(200, head);
  let pos = 0;
  let gone = false;
  res.on('close', () => (gone = true));
  const next = async (): Promise<void> => {
    while (pos < size && !gone) {
      const wait = turn();
      if (wait !== undefined) await wait;
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
      const n = readSync(fd, buf, 0, buf.length, pos);
      pos += n;
      stats.bytes += n;
      if (!res.write(buf.subarray(0, n))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  };
  void next();
});
server.listen(port, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
