import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { send } from '../support/http-client.js';
import { startProcess } from '../support/processes.js';
import { freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

describe('request workers whose stdout is a pipe (docker, journald)', () => {
  // At SIGTERM a worker flushes its last batch and exits. Into a full pipe that write was still in
  // flight (sonic-boom tries again after EAGAIN), and its exit-time flush skipped it: lines lost.
  // Batches of a second make every worker's last batch large.
  it('loses no line of an answered request when stopped under load, with long lines', { skip: process.platform !== 'linux' && 'pipes' }, async (t) => {
    const node = await startServer((_req, res) => res.end('{}'));
    const tmp = makeTempDir('shutdown-lines');
    const [port, adminPort] = await Promise.all([freePort(), freePort()]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, [`listen: {address: 127.0.0.1, port: ${port}}`, `admin: {address: 127.0.0.1, port: ${adminPort}}`, 'nodes:', `  - {name: n1, url: "${node.url}"}`, 'health: {enabled: false}', 'proxy: {workers: 2}', 'log: {batchWindow: 1s}'].join('\n'));
    const proc = await startProcess('node', [CLI, 'serve', '--config', file], /"event":"listening"/);
    t.after(async () => {
      await proc.stop();
      await node.close();
      tmp.remove();
    });
    const long = 'x'.repeat(7000);
    const answered = new Set<string>();
    let next = 0;
    let stopping: Promise<void> | undefined;
    // 32 at a time, each on a connection of its own; the stop comes once 300 are answered, with more in flight.
    const client = async () => {
      while (next < 600) {
        const path = `/v2/lib/a/manifests/${long}-${next++}`;
        try {
          if ((await send(`http://127.0.0.1:${port}${path}`)).status === 200) answered.add(path);
        } catch {
          // Refused after the stop: no answer, no line owed.
        }
        if (answered.size >= 300) stopping ??= proc.stop();
      }
    };
    await Promise.all(Array.from({ length: 32 }, client));
    await stopping;
    await finished(proc.child.stdout!);
    const paths = new Set(
      proc
        .output()
        .split('\n')
        .filter((l) => l.includes('"event":"request"'))
        .map((l) => {
          try {
            return (JSON.parse(l) as { path: string }).path;
          } catch {
            return undefined; // a line cut short (its worker exited mid-write) is a line lost
          }
        }),
    );
    assert.ok(answered.size >= 300);
    const missing = [...answered].filter((p) => !paths.has(p));
    assert.equal(missing.length, 0, `every answered request has its routing line (${missing.length} of ${answered.size} missing)`);
  });
});
