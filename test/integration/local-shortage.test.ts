import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { send } from '../support/http-client.js';
import { startProcess } from '../support/processes.js';
import { freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const LIMIT = 160;

it('out of file descriptors: the request gets 503 LOCAL_RESOURCES, no other node is tried, and no node is taken out', { skip: process.platform !== 'linux' }, async (t) => {
  const reached: string[] = [];
  const nodes = await Promise.all(['n1', 'n2'].map((name) => startServer((req, res) => (req.resume(), reached.push(name), res.end('ok')))));
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const tmp = makeTempDir('shortage');
  t.after(tmp.remove);
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(tmp.dir, 'harbor-lb.yaml');
  writeFileSync(
    config,
    `listen: {address: 127.0.0.1, port: ${port}}\nnodes:\n${nodes.map((n, i) => `  - {name: n${i + 1}, url: "${n.url}"}\n`).join('')}health: {enabled: false}\nproxy: {workers: 1}\nadmin: {address: 127.0.0.1, port: ${adminPort}}\nlog: {level: info}\n`,
  );
  // One process held to LIMIT descriptors (as a service whose LimitNOFILE is too low).
  const proxy = await startProcess('bash', ['-c', `ulimit -n ${LIMIT} && exec "${process.execPath}" "${CLI}" serve --config "${config}"`], /"event":"listening"/);
  t.after(() => proxy.stop());
  const pid = proxy.child.pid!;
  const states = async () => (JSON.parse((await send(`http://127.0.0.1:${adminPort}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string }> }).nodes.map((n) => [n.name, n.state]);
  const before = await states();
  // Connections that send nothing take every descriptor left (each one harbor-lb accepts costs it one).
  const idle: Socket[] = [];
  t.after(() => idle.forEach((s) => s.destroy()));
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const fds = () => readdirSync(`/proc/${pid}/fd`).length;
  for (let full = false; !full && idle.length < LIMIT; ) {
    const before = fds();
    const s = connect(port, '127.0.0.1');
    let closed = false;
    s.on('error', () => {}).on('close', () => (closed = true));
    idle.push(s);
    await once(s, 'connect');
    // Taken once harbor-lb holds one more descriptor; at its limit it closes the connection at once instead (libuv).
    while (fds() === before && !closed) await new Promise((r) => setImmediate(r));
    full = closed;
  }
  client.write(`GET /v2/lib/a/manifests/x HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n\r\n`);
  let answer = '';
  client.on('data', (c: Buffer) => (answer += c.toString('latin1')));
  await once(client, 'close');
  assert.match(answer, /^HTTP\/1\.1 503 /);
  assert.match(answer, /retry-after: 1/i);
  assert.match(answer, /out of file descriptors/);
  assert.deepEqual(reached, [], 'no node reached');
  idle.forEach((s) => s.destroy());
  // Descriptors back: both nodes as they were, neither taken out.
  assert.deepEqual(await states(), before);
  assert.ok(before.every(([, state]) => state !== 'unhealthy'));
  // The routing line comes with the next batch of lines.
  await new Promise<void>((resolve) => {
    const seen = () => proxy.output().includes('"event":"request"') && resolve();
    proxy.child.stdout!.on('data', seen);
    seen();
  });
  const lines = proxy.output().split('\n').filter((l) => l.includes('"event":"request"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1);
  assert.deepEqual([lines[0]!.status, lines[0]!.error, lines[0]!.attempts], [503, 'LOCAL_RESOURCES: EMFILE', 1]);
  assert.ok(!proxy.output().includes('"event":"node_state"'), 'no node changed state');
});
