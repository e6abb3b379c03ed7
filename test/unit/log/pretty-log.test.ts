import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLoggers } from '../../../src/log/loggers.js';
import { createPrettyDestination, requestLine } from '../../../src/log/pretty-format.js';

describe('readable log lines (log.format: pretty)', () => {
  it('says a request in one line: status, method, path, node, why, time', () => {
    const line = requestLine({ event: 'request', status: 200, method: 'GET', path: '/v2/library/demo/manifests/v1', node: 'harbor2', reason: 'pinned', attempts: 1, durationMs: 3.2 });
    assert.equal(line, '200 GET /v2/library/demo/manifests/v1 → harbor2 (pinned, 3.2 ms)');
    assert.equal(
      requestLine({ event: 'request', status: 502, method: 'PUT', path: '/v2/a/blobs/uploads/x', node: 'n1', reason: 'retried', attempts: 2, durationMs: 1520, error: 'ECONNRESET' }),
      '502 PUT /v2/a/blobs/uploads/x → n1 (retried, 2 attempts, 1.5 s) ECONNRESET',
    );
    assert.equal(requestLine({ event: 'request', status: 400, method: 'GET', path: '/v2/', node: null, reason: null, attempts: 0, durationMs: 0.4 }), '400 GET /v2/ → - (not forwarded, 0.4 ms)');
  });

  it('writes routing and event lines through pino-pretty, one short line each, no JSON fields', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const { logger, routing } = createLoggers({ level: 'info', format: 'pretty', destination: createPrettyDestination({ colorize: false, destination: out }) });
    routing.write({ event: 'request', reqId: 'r1', requestId: 'r1', traceId: '0af7651916cd43dd8448eb211c80319c', client: { ip: '127.0.0.1' }, method: 'GET', path: '/v2/', route: 'v2', node: 'n1', reason: 'balanced', affinity: 'none', status: 401, durationMs: 2, attempts: 1, bytesIn: 0, bytesOut: 10 });
    logger.warn({ event: 'node_state', node: 'n2', from: 'healthy', to: 'unhealthy' }, 'node n2 is now unhealthy: 3 checks failed in a row');
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 2, text);
    assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: 401 GET \/v2\/ → n1 \(balanced, 2\.0 ms\)$/);
    assert.match(lines[1]!, /WARN: \[node_state\] node n2 is now unhealthy: 3 checks failed in a row$/);
  });
});
