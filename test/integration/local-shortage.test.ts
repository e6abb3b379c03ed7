import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { it, type TestContext } from 'node:test';
import { send } from '../support/http-client.js';
import { startProcess } from '../support/processes.js';
import { freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const LIMIT = 160;

/** harbor-lb as one process held to LIMIT descriptors (as a service whose LimitNOFILE is too low), in front of `nodes`. */
async function startHeld(t: TestContext, nodes: ReadonlyArray<{ url: string }>, health: string) {
  const tmp = makeTempDir('shortage');
  t.after(tmp.remove);
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(tmp.dir, 'harbor-lb.yaml');
  writeFileSync(
    config,
    `listen: {address: 127.0.0.1, port: ${port}}\nnodes:\n${nodes.map((n, i) => `  - {name: n${i + 1}, url: "${n.url}"}\n`).join('')}health: ${health}\nproxy: {workers: 1}\nadmin: {address: 127.0.0.1, port: ${adminPort}}\nlog: {level: info}\n`,
  );
  const proxy = await startProcess('bash', ['-c', `ulimit -n ${LIMIT} && exec "${process.execPath}" "${CLI}" serve --config "${config}"`], /"event":"listening"/);
  t.after(() => proxy.stop());
  const states = async () => (JSON.parse((await send(`http://127.0.0.1:${adminPort}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string }> }).nodes.map((n) => [n.name, n.state]);
  /** Resolves once the output says what `seen` looks for (it is read again as each line comes). */
  const output = (seen: (out: string) => boolean) =>
    new Promise<void>((resolve) => {
      const look = () => seen(proxy.output()) && resolve();
      proxy.child.stdout!.on('data', look);
      look();
    });
  return { proxy, port, states, output };
}

/** Connections that send nothing take every descriptor harbor-lb has left (each one it accepts costs it one); destroyed after the test. */
async function takeEveryDescriptor(t: TestContext, port: number, pid: number): Promise<Socket[]> {
  const idle: Socket[] = [];
  t.after(() => idle.forEach((s) => s.destroy()));
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
  return idle;
}

it('out of file descriptors: the request gets 503 LOCAL_RESOURCES, no other node is tried, and no node is taken out', { skip: process.platform !== 'linux' }, async (t) => {
  const reached: string[] = [];
  const nodes = await Promise.all(['n1', 'n2'].map((name) => startServer((req, res) => (req.resume(), reached.push(name), res.end('ok')))));
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const { proxy, port, states, output } = await startHeld(t, nodes, '{enabled: false}');
  const before = await states();
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const idle = await takeEveryDescriptor(t, port, proxy.child.pid!);
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
  await output((out) => out.includes('"event":"request"'));
  const lines = proxy.output().split('\n').filter((l) => l.includes('"event":"request"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1);
  assert.deepEqual([lines[0]!.status, lines[0]!.error, lines[0]!.attempts], [503, 'LOCAL_RESOURCES: EMFILE', 1]);
  assert.ok(!proxy.output().includes('"event":"node_state"'), 'no node changed state');
});

it('out of file descriptors: active health checks harbor-lb cannot make count against no node', { skip: process.platform !== 'linux' }, async (t) => {
  // Each check needs a connection of its own: the nodes close theirs after every answer.
  const nodes = await Promise.all([0, 1].map(() => startServer((req, res) => (req.resume(), res.setHeader('connection', 'close'), res.end('ok')))));
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  // One failed check would take a node out.
  const { proxy, port, states, output } = await startHeld(t, nodes, '{enabled: true, path: /ping, interval: 50ms, unhealthyAfter: 1}');
  const healthy = (out: string) => ['n1', 'n2'].every((n) => new RegExp(`"event":"node_state"[^\n]*"node":"${n}"[^\n]*"to":"healthy"`).test(out));
  await output(healthy);
  const idle = await takeEveryDescriptor(t, port, proxy.child.pid!);
  // Until both nodes' checks could not be made, or one was taken out.
  const notMade = (out: string) => ['n1', 'n2'].every((n) => new RegExp(`"event":"health_check_not_made"[^\n]*"node":"${n}"`).test(out));
  await output((out) => notMade(out) || out.includes('"to":"unhealthy"'));
  idle.forEach((s) => s.destroy());
  assert.ok(!proxy.output().includes('"to":"unhealthy"'), 'no node taken out');
  assert.match(proxy.output(), /"event":"health_check_not_made"[^\n]*not made \(EMFILE\): harbor-lb is out of file descriptors/);
  assert.deepEqual(await states(), [
    ['n1', 'healthy'],
    ['n2', 'healthy'],
  ]);
});
