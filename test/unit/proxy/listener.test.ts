import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { createListener } from '../../../src/proxy/listener.js';

/** node:http hands bodyless requests over already ended from Node 24.12 (optimizeEmptyRequests); an earlier Node ignores the option. */
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const optimizes = major > 24 || (major === 24 && minor >= 12);

interface Seen {
  method: string;
  endedOnArrival: boolean;
  body: number;
}

/** The client-facing listener on a loopback port, answering each request once its body is read. */
async function listener(t: { after: (fn: () => unknown) => void }) {
  const cfg = validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:9' }] });
  const seen: Seen[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const s: Seen = { method: req.method ?? '', endedOnArrival: req.readableEnded, body: 0 };
    seen.push(s);
    const answer = () => res.end(`${s.body}`);
    if (req.readableEnded) return answer();
    req.on('data', (c: Buffer) => (s.body += c.length));
    req.on('end', answer);
  };
  const server = createListener(cfg.listen, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  });
  const send = (method: string, body?: Buffer, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; text: string; socket: unknown }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method, path: '/v2/', agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, socket: req.socket }));
      });
      req.on('error', reject);
      req.end(body);
    });
  return { seen, send };
}

it('a request without a body reaches the handler already ended: node:http skips its body stream', { skip: !optimizes && 'Node before 24.12' }, async (t) => {
  const { seen, send } = await listener(t);
  const first = await send('GET');
  const second = await send('HEAD');
  assert.equal(first.status, 200);
  assert.equal(first.text, '0');
  assert.equal(second.status, 200);
  assert.equal(second.socket, first.socket, 'the connection is kept alive across them');
  assert.deepEqual(
    seen.map((s) => [s.method, s.endedOnArrival]),
    [
      ['GET', true],
      ['HEAD', true],
    ],
  );
});

it('a request with a body, of known length or chunked, still has all of it to read', async (t) => {
  const { seen, send } = await listener(t);
  const body = Buffer.alloc(300_000, 7);
  assert.equal((await send('PUT', body, { 'content-length': String(body.length) })).text, '300000');
  assert.equal((await send('PATCH', body, { 'transfer-encoding': 'chunked' })).text, '300000');
  // A GET may carry a body too: it is read like any other.
  assert.equal((await send('GET', body.subarray(0, 10), { 'content-length': '10' })).text, '10');
  assert.equal((await send('GET')).text, '0', 'and the next request on the connection is whole');
  assert.deepEqual(
    seen.map((s) => [s.method, s.endedOnArrival, s.body]),
    [
      ['PUT', false, 300_000],
      ['PATCH', false, 300_000],
      ['GET', false, 10],
      ['GET', optimizes, 0],
    ],
  );
});
