import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import request from 'supertest';
import { createAdminServer } from '../../src/admin/server.js';
import { validateConfig } from '../../src/config/load.js';
import { createLoggers } from '../../src/log/loggers.js';
import { NodeHealth } from '../../src/health/node-health.js';
import { OutlierDetector } from '../../src/health/outlier-detector.js';
import { NodeSet } from '../../src/nodes/node-set.js';
import { closeServer, listen } from '../../src/proxy/listener.js';
import { createSystemClock } from '../../src/util/clock.js';
import { startApp } from '../support/app.js';
import { LogSink } from '../support/log-sink.js';
import { startServer } from '../support/servers.js';

interface RawReply {
  status: number;
  headers: string;
  body: string;
}

/**
 * Writes `head` as it is on a fresh connection and reads until the server closes it: node:http's
 * client refuses to send most of these request targets, which is the point of sending them.
 */
function raw(port: number, head: string): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
      if (!m) return reject(new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      resolve({ status: Number(m[1]), headers: m[2]!.toLowerCase(), body: m[3]! });
    });
    socket.end(head);
  });
}

const head = (method: string, target: string) => `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;

/** [what, request head, expected status]: each must get a JSON answer and leave the listener up. */
const HOSTILE: Array<[string, string, number]> = [
  ['a truncated UTF-8 escape (%E0)', head('POST', '/-/nodes/%E0/drain'), 400],
  ['a lone %', head('POST', '/-/nodes/%/drain'), 400],
  ['an escape cut short', head('POST', '/-/nodes/n1%E0%A4%A/undrain'), 400],
  ['a dot-dot node name', head('POST', '/-/nodes/../drain'), 400],
  ['an encoded dot-dot node name', head('POST', '/-/nodes/%2e%2e/drain'), 400],
  ['an encoded NUL in the node name', head('POST', '/-/nodes/n1%00/drain'), 400],
  ['an empty node name', head('POST', '/-/nodes//drain'), 400],
  ['a node name of 8000 characters', head('POST', `/-/nodes/${'a'.repeat(8000)}/drain`), 400],
  ['an unknown node', head('POST', '/-/nodes/nope/drain'), 404],
  ['an encoded name of no node', head('POST', '/-/nodes/%6Eope/undrain'), 404],
  ['an unknown path', head('GET', '/-/nodes/n1'), 404],
  ['a path with dot-dot segments', head('GET', '/-/../-/../etc/passwd'), 404],
  ['an asterisk target', head('OPTIONS', '*'), 400],
  ['an absolute-form target', head('GET', 'http://elsewhere/-/status'), 400],
  ['a raw NUL in the path', head('GET', '/-/health\0z'), 400],
  ['a path longer than the head limit', head('GET', `/-/${'x'.repeat(70_000)}`), 431],
  ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400],
];

describe('admin API under hostile requests', () => {
  it('answers every malformed path with a JSON 400/404 (or 431) and keeps serving', async (t) => {
    const node = await startServer((_q, r) => r.end('ok'));
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const port = Number(new URL(lb.adminUrl).port);
    const admin = request(lb.adminUrl);
    for (const [what, requestHead, status] of HOSTILE) {
      const reply = await raw(port, requestHead);
      assert.equal(reply.status, status, `${what}: ${reply.body}`);
      assert.match(reply.headers, /^content-type: application\/json$/m, `${what}: JSON answer`);
      assert.equal(typeof (JSON.parse(reply.body) as { error: unknown }).error, 'string', what);
      assert.equal((await admin.get('/-/healthz')).status, 200, `the admin listener still answers after ${what}`);
    }
    // The operator drain still works, and nothing hostile drained anything.
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    await admin.post('/-/nodes/n%31/drain').expect('content-type', 'application/json').expect(200, { node: 'n1', state: 'draining' });
  });

  it('answers 500 as JSON when a handler throws, logs it, and keeps serving', async (t) => {
    const logs = new LogSink();
    const { logger } = createLoggers({ level: 'info', format: 'json', destination: logs });
    const config = validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }] });
    const nodes = new NodeSet(config, createSystemClock());
    const clock = createSystemClock();
    const server: http.Server = createAdminServer({
      nodes,
      health: new NodeHealth(nodes, config.health, clock),
      outliers: new OutlierDetector(nodes, config.health.passive, clock, logger, async () => ({ ok: true, detail: 'not checked in this test' })),
      sticky: () => {
        throw new Error('sticky store exploded');
      },
      token: undefined,
      logger,
      metrics: { contentType: 'text/plain', render: () => Promise.reject(new Error('collector exploded')) },
    });
    const port = await listen(server, 0, '127.0.0.1');
    t.after(async () => {
      await closeServer(server);
      await nodes.close();
    });
    const admin = request(`http://127.0.0.1:${port}`);
    const reply = await admin.get('/-/status').expect(500).expect('content-type', 'application/json');
    assert.match(reply.body.error, /internal error/);
    const line = await logs.waitFor((l) => l.event === 'admin_error');
    assert.equal(line.path, '/-/status');
    assert.match(String((line.err as { message?: string }).message), /sticky store exploded/);
    // A scrape whose collection fails (asynchronously) is answered the same way.
    const scrape = await admin.get('/metrics').expect(500).expect('content-type', 'application/json');
    assert.match(scrape.body.error, /internal error/);
    assert.match(String(((await logs.waitFor((l) => l.event === 'admin_error' && l.path === '/metrics')).err as { message?: string }).message), /collector exploded/);
    await admin.get('/-/healthz').expect(200);
  });
});
