// A Harbor-like node as its own process, so tests can SIGKILL or SIGSTOP it.
// Usage: node node-process-main.js PORT NAME. Prints "listening PORT" when ready.
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
const name = process.argv[3] ?? 'node';
const BLOB = Buffer.alloc(256 * 1024, 0x42);

const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
  res.setHeader('x-node', name);
  if (req.url === '/api/v2.0/health') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ status: 'healthy', components: [{ name: 'core', status: 'healthy' }, { name: 'registry', status: 'healthy' }] }));
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BLOB.length });
    return res.end(req.method === 'HEAD' ? undefined : BLOB);
  }
  let n = 0;
  req.on('data', (c: Buffer) => (n += c.length));
  req.on('end', () => {
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ received: n }));
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
