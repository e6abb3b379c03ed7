import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../../src/config/load.js';
import { UploadSecretProbe } from '../../../src/health/upload-secret-probe.js';
import type { UploadAnswer } from '../../../src/health/upload-secrets.js';
import { createLoggers } from '../../../src/log/loggers.js';
import { NodeFlags } from '../../../src/nodes/node-flags.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';

const answer = (status: number, text = '', headers: Record<string, string> = {}): UploadAnswer => ({ status, text, header: (n) => headers[n] });

/** Three nodes; each node's registry says whether an upload begun on n1 continues there (`secretOk`). */
function setup(credentials: boolean, interval = 300_000) {
  const clock = new FakeClock();
  const logs = new LogSink();
  const config = validateConfig({
    nodes: ['a', 'b', 'c'].map((x, i) => ({ name: `n${i + 1}`, url: `http://127.0.0.1:${1000 + i}` })),
    ...(credentials ? { doctor: { credentials: { username: 'u', password: 'p' } } } : {}),
  });
  const nodes = new NodeSet(config, clock);
  const { logger } = createLoggers({ ...config.log, destination: logs });
  const flags = new NodeFlags(nodes, logger, clock);
  const secretOk = new Map([['http://127.0.0.1:1001', false]]);
  const calls: string[] = [];
  const probe = new UploadSecretProbe(
    nodes,
    flags,
    { credentials: config.doctor.credentials, repository: 'library/x', service: 'harbor-registry', interval },
    () => ({
      request: async (origin, path, _h, method = 'GET') => {
        calls.push(`${method} ${origin}${path}`);
        if (path.startsWith('/service/token')) return answer(200, '{"token":"t"}');
        if (method === 'POST') return answer(202, '', { location: '/v2/library/x/blobs/uploads/u1?_state=s' });
        if (method === 'PATCH') return secretOk.get(origin) === false ? answer(404, '{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}') : answer(202);
        return answer(204);
      },
      close: async () => {},
    }),
    logger,
    clock,
    () => 0.5,
  );
  const options = (interval: number) => ({ credentials: config.doctor.credentials, repository: 'library/x', service: 'harbor-registry', interval });
  return { clock, nodes, probe, calls, secretOk, options, flagged: () => nodes.all.filter((n) => n.flags.has('HTTP_SECRET_DIFFERS')).map((n) => n.name) };
}

/** Lets the probe's awaited requests (all answered at once) run to the end of a round. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('upload secret probe (HTTP_SECRET_DIFFERS while serving)', () => {
  it('waits for two nodes taking traffic, flags the one that refuses the continued upload, and clears it once fixed', async () => {
    const { clock, nodes, probe, calls, secretOk, flagged } = setup(true);
    nodes.setCheck(nodes.get('n1')!, 'healthy', 'ok');
    nodes.setCheck(nodes.get('n2')!, 'unhealthy', 'down');
    nodes.setCheck(nodes.get('n3')!, 'unhealthy', 'down');
    probe.start();
    await settle();
    assert.equal(calls.length, 0, 'no round while one node alone takes traffic');
    nodes.setCheck(nodes.get('n2')!, 'healthy', 'ok');
    nodes.setCheck(nodes.get('n3')!, 'healthy', 'ok');
    await settle();
    assert.deepEqual(flagged(), ['n2']);
    assert.ok(calls.some((c) => c.startsWith('DELETE http://127.0.0.1:1000/v2/library/x/blobs/uploads/u1')), 'the probe cancels its uploads');
    secretOk.set('http://127.0.0.1:1001', true);
    clock.advance(330_000);
    await settle();
    assert.deepEqual(flagged(), []);
    await probe.stop();
  });

  it('is off at 0s, starts when a reload turns it on, and clears its flags when a reload turns it off', async () => {
    const { clock, nodes, probe, calls, options, flagged } = setup(true, 0);
    for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
    probe.start();
    await settle();
    assert.equal(calls.length, 0, '0s: no upload begun');
    probe.configure(options(60_000));
    await settle();
    assert.deepEqual(flagged(), ['n2'], 'turned on: a round at once');
    const before = calls.length;
    clock.advance(70_000);
    await settle();
    assert.ok(calls.length > before, 'and every interval after');
    probe.configure(options(0));
    assert.deepEqual(flagged(), [], 'turned off: nothing keeps its flag true');
    await probe.stop();
  });

  it('does nothing without doctor.credentials', async () => {
    const { nodes, probe, calls, flagged } = setup(false);
    for (const n of nodes.all) nodes.setCheck(n, 'healthy', 'ok');
    probe.start();
    await settle();
    assert.deepEqual([calls, flagged()], [[], []]);
    await probe.stop();
  });
});
