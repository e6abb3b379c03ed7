import assert from 'node:assert/strict';
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from '../support/http-client.js';
import { startProcess } from '../support/processes.js';
import { freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

describe('request workers whose stdout is a pipe (docker, journald)', () => {
  it('write to pipes of their own, and every routing line reaches stdout whole, the last ones at shutdown too', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
    const node = await startServer((_req, res) => res.end('{}'));
    const tmp = makeTempDir('log-relay');
    const [port, adminPort] = await Promise.all([freePort(), freePort()]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, [`listen: {address: 127.0.0.1, port: ${port}}`, `admin: {address: 127.0.0.1, port: ${adminPort}}`, 'nodes:', `  - {name: n1, url: "${node.url}"}`, 'health: {enabled: false}', 'proxy: {workers: 2}'].join('\n'));
    const proc = await startProcess('node', [CLI, 'serve', '--config', file], /"event":"listening"/);
    t.after(async () => {
      await proc.stop();
      await node.close();
      tmp.remove();
    });
    const status = JSON.parse((await send(`http://127.0.0.1:${adminPort}/-/status`)).body.toString()) as { workers: Array<{ pid: number }> };
    const own = readlinkSync(`/proc/${proc.child.pid}/fd/1`);
    assert.equal(status.workers.length, 2);
    for (const w of status.workers) assert.notEqual(readlinkSync(`/proc/${w.pid}/fd/1`), own, `worker ${w.pid} writes to a pipe of its own`);

    // Each on a connection of its own, so both workers serve some; the stop comes before the last batch's time is up.
    for (let i = 0; i < 60; i++) assert.equal((await send(`http://127.0.0.1:${port}/v2/lib/a/manifests/${i}`)).status, 200);
    await proc.stop();
    const lines = proc
      .output()
      .split('\n')
      .filter((l) => l.includes('"event":"request"'));
    const records = lines.map((l) => JSON.parse(l) as { reqId: string; path: string });
    assert.equal(records.length, 60, 'one routing line per request, none lost at shutdown');
    assert.equal(new Set(records.map((r) => r.path)).size, 60);
    assert.equal(new Set(records.map((r) => r.reqId.split('-')[0])).size, 2, 'both workers served');
  });
});
