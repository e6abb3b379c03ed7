import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { WorkerStatus } from '../../src/workers/worker-pool.js';
import { startApp, type StartedApp } from '../support/app.js';
import { startFromFile } from '../support/file-app.js';
import { send } from '../support/http-client.js';
import { parseExposition, samplesOf } from '../support/prometheus-text.js';
import { startServer, type TestServer } from '../support/servers.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';
import { FakeClock } from '../support/fake-clock.js';

type T = { after: (fn: () => unknown) => void };

interface Status {
  nodes: Array<{ name: string; state: string; requests: number }>;
  workers: WorkerStatus[];
}

async function nodes(t: T, n: number, handler: Parameters<typeof startServer>[0] = (req, res) => (req.resume(), res.end('ok'))): Promise<TestServer[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startServer(handler)));
  t.after(() => Promise.all(list.map((s) => s.close())));
  return list;
}

async function withWorkers(t: T, urls: string[], extra: Parameters<typeof startApp>[1] = {}): Promise<StartedApp> {
  const lb = await startApp(urls, { ...extra, proxy: { workers: 2, ...extra.proxy } });
  t.after(() => lb.close());
  return lb;
}

/** /-/status: with workers it first brings every worker up to date, so it also serves as a barrier. */
async function status(lb: { adminUrl: string }): Promise<Status> {
  return JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as Status;
}

const basic = (user: string) => `Basic ${Buffer.from(`${user}:pw`).toString('base64')}`;
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

describe('request workers (proxy.workers)', () => {
  it('spread connections over the workers; the routing log, /-/status and /metrics add up to one system', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 2)).map((s) => s.url));
    // Every request on its own connection: the kernel spreads connections over the workers' sockets.
    for (let i = 0; i < 40; i++) assert.equal((await send(`${lb.url}/v2/lib/a/manifests/${i}`)).status, 200);
    const lines = await lb.logs.waitForRequests(40);
    assert.equal(lines.length, 40, 'one routing line per request');
    assert.equal(new Set(lines.map((l) => l.reqId)).size, 40, 'request ids unique across workers');

    const s = await status(lb);
    assert.equal(s.workers.length, 2);
    for (const w of s.workers) {
      assert.equal(w.state, 'running');
      assert.ok(w.requests > 0, `worker ${w.index} served some of the requests (${w.requests})`);
      assert.ok(typeof w.pid === 'number' && w.pid !== process.pid);
      if (process.platform === 'linux' && process.env.MALLOC_ARENA_MAX === undefined) {
        assert.ok(readFileSync(`/proc/${w.pid}/environ`, 'utf8').split('\0').includes('MALLOC_ARENA_MAX=2'), 'started with 2 malloc arenas');
      }
      if (process.platform === 'linux' && !/semi.space/.test(process.env.NODE_OPTIONS ?? '')) {
        assert.ok(readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0').includes('--max-semi-space-size=16'), 'a young generation of at most 16 MiB per semi-space');
      }
      if (process.platform === 'linux' && !process.execArgv.some((a) => /maglev/.test(a))) {
        assert.ok(readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0').includes('--no-maglev'), 'without Maglev');
      }
      if (process.platform === 'linux' && !process.execArgv.some((a) => /liftoff|wasm\S*tier/.test(a))) {
        const args = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
        assert.ok(args.includes('--no-wasm-tier-up') && args.includes('--no-wasm-dynamic-tiering'), "undici's parser left at WebAssembly's baseline tier");
      }
    }
    assert.equal(s.workers.reduce((a, w) => a + w.requests, 0), 40);
    assert.equal(s.nodes.reduce((a, n) => a + n.requests, 0), 40, "the nodes' counters are the workers' added up");

    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    const total = (name: string) => samplesOf(families, name).reduce((a, x) => a + x.value, 0);
    assert.equal(total('harbor_lb_requests_total'), 40);
    assert.equal(total('harbor_lb_node_requests_total'), 40);
    assert.equal(samplesOf(families, 'harbor_lb_request_duration_seconds_count').reduce((a, x) => a + x.value, 0), 40);
  });

  it('memory pins agree across workers: each client stays on the node it was pinned to, whichever worker serves it', async (t) => {
    const lb = await withWorkers(
      t,
      (await nodes(t, 3)).map((s) => s.url),
      { sticky: { keys: ['upload', 'session', 'client'] } },
    );
    // Pins made while n1 is drained differ from what a worker would hash to on its own.
    assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/drain`, { method: 'POST' })).status, 200);
    await status(lb);
    for (const u of USERS) {
      assert.equal((await send(`${lb.url}/service/token?service=harbor-registry`, { headers: { authorization: basic(u) } })).status, 200);
      assert.equal((await send(`${lb.url}/v2/`, { headers: { authorization: basic(u) } })).status, 200);
    }
    assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/undrain`, { method: 'POST' })).status, 200);
    await status(lb);
    for (let round = 0; round < 3; round++) {
      for (const u of USERS) assert.equal((await send(`${lb.url}/v2/x/manifests/${round}`, { headers: { authorization: basic(u) } })).status, 200);
    }
    const lines = await lb.logs.waitForRequests(USERS.length * 5);
    const used = new Set<unknown>();
    for (const u of USERS) {
      const mine = lines.filter((l) => (l.client as { user?: string } | undefined)?.user === u);
      const went = new Set(mine.map((l) => l.node));
      assert.equal(went.size, 1, `${u} went to ${[...went].join(', ')}`);
      used.add([...went][0]);
    }
    assert.ok(!used.has('n1'), 'pins made while n1 was drained hold in both workers');
    const s = await status(lb);
    assert.ok(s.workers.every((w) => w.requests > 0), 'both workers served pinned clients');
  });

  it("a node that refuses connections is taken out once, by the control plane, for every worker", async (t) => {
    const servers = await nodes(t, 2);
    const lb = await withWorkers(t, servers.map((s) => s.url));
    await servers[1]!.close();
    for (let i = 0; i < 20; i++) assert.equal((await send(`${lb.url}/v2/lib/a/blobs/sha256:${i}`)).status, 200, 'retried on the other node');
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'unhealthy', 5000);
    await status(lb);
    const before = lb.logs.requests().length;
    for (let i = 0; i < 20; i++) assert.equal((await send(`${lb.url}/v2/lib/a/blobs/sha256:${i}`)).status, 200);
    const after = (await lb.logs.waitForRequests(before + 20)).slice(before);
    assert.deepEqual([...new Set(after.map((l) => `${String(l.node)} after ${String(l.attempts)} attempt(s)`))], ['n1 after 1 attempt(s)'], 'no worker tries the node taken out');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_state' && l.node === 'n2').length, 1, 'one state change, logged once');
    assert.equal(lb.app.nodes.get('n2')!.state, 'unhealthy');
  });

  it("workers send a node's good answers only while the control plane waits for them: after its failure, until it is cleared", async (t) => {
    let failOnce = true;
    const failing = await startServer((req, res) => {
      req.resume();
      if (failOnce && req.url!.endsWith('/fail')) {
        failOnce = false;
        res.statusCode = 503;
        return void res.end('busy');
      }
      res.end('ok');
    });
    t.after(() => failing.close());
    const [healthy] = await nodes(t, 1);
    const lb = await withWorkers(t, [failing.url, healthy!.url]);
    const outliers = lb.app.outliers;
    const answered: string[] = [];
    let failed!: () => void;
    let cleared!: () => void;
    const failure = new Promise<void>((resolve) => (failed = resolve));
    const clearing = new Promise<void>((resolve) => (cleared = resolve));
    const record = outliers.record.bind(outliers);
    outliers.record = (node, v) => {
      record(node, v);
      if (v.kind !== 'answered') return failed();
      answered.push(node.name);
      if (node.name === 'n1') cleared();
    };
    // Each request on its own connection, so both workers serve some.
    for (let i = 0; i < 20; i++) assert.equal((await send(`${lb.url}/v2/lib/a/manifests/${i}`)).status, 200);
    // n1 answers 503 once: the request goes on to n2, and n1's failure to the control plane.
    for (let i = 0; failOnce && i < 20; i++) assert.equal((await send(`${lb.url}/v2/lib/a/manifests/fail`)).status, 200);
    await failure;
    assert.equal(outliers.consecutiveFailures(lb.app.nodes.get('n1')!), 1);
    // Its good answers are wanted now, from whichever worker serves them: the count clears.
    for (let i = 0; i < 6; i++) assert.equal((await send(`${lb.url}/v2/lib/a/manifests/after-${i}`)).status, 200);
    await clearing;
    assert.equal(outliers.consecutiveFailures(lb.app.nodes.get('n1')!), 0);
    await status(lb);
    assert.deepEqual([...new Set(answered)], ['n1'], "n2 never failed: none of its good answers crossed to the control plane");
  });

  it('a worker whose control plane is gone ends cleanly (exit 0), not on a disconnected channel', async () => {
    const entry = fileURLToPath(new URL('../../src/workers/worker-main.js', import.meta.url));
    const child = fork(entry, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await once(child, 'spawn');
    // As when the control plane dies: the channel closes under the worker.
    child.disconnect();
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(stderr, '', 'nothing thrown');
    assert.equal(code, 0);
  });

  it('a node both workers suspect from client traffic is said suspected once, by the control plane', async (t) => {
    const tmp = makeTempDir('suspect-workers');
    t.after(tmp.remove);
    const sim = await startSimCluster(tmp.dir, ['none', 'foreign-key']);
    t.after(() => sim.close());
    const lb = await withWorkers(t, sim.nodes.map((n) => n.url), {
      balance: { policy: 'round-robin' },
      token: { rootCert: sim.cluster.certFile, probe: { enabled: false } },
    });
    const basicAdmin = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
    // Twelve at once, each on its own connection: both workers send some to n2, whose tokens do not
    // verify, before the control plane has told them to keep token requests away from it.
    const answers = await Promise.all(Array.from({ length: 12 }, () => send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: basicAdmin } })));
    assert.deepEqual(answers.map((a) => a.status), Array(12).fill(200));
    await lb.logs.waitForRequests(12);
    const suspicions = samplesOf(await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString()), 'harbor_lb_token_verdicts_total').filter((x) => x.labels.node === 'n2' && x.labels.verdict === 'suspected');
    assert.ok(suspicions.reduce((a, x) => a + x.value, 0) >= 2, 'n2 suspected more than once');
    await status(lb);
    const said = lb.logs.lines.filter((l) => l.event === 'node_suspected');
    assert.deepEqual(said.map((l) => [l.node, l.cause]), [['n2', 'token']], 'once for the instance, not once per worker');
  });

  it('a worker that crashes is replaced; the other serves meanwhile', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 1)).map((s) => s.url));
    for (let i = 0; i < 10; i++) assert.equal((await send(`${lb.url}/v2/`)).status, 200);
    const requestsTotal = async () => samplesOf(await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString()), 'harbor_lb_requests_total').reduce((a, x) => a + x.value, 0);
    assert.equal(await requestsTotal(), 10);
    const first = await status(lb);
    const victim = first.workers.find((w) => w.requests > 0)!;
    process.kill(victim.pid!, 'SIGKILL');
    const exited = await lb.logs.waitFor((l) => l.event === 'worker_exited', 5000);
    assert.equal(exited.worker, victim.index);
    assert.equal(exited.signal, 'SIGKILL');
    for (let i = 0; i < 10; i++) assert.equal((await send(`${lb.url}/v2/`)).status, 200, 'the other worker serves while one is down');
    await lb.logs.waitFor((l) => l.event === 'worker_started' && l.worker === victim.index, 10_000);
    const s = await status(lb);
    const slot = s.workers.find((w) => w.index === victim.index)!;
    assert.equal(slot.state, 'running');
    assert.equal(slot.restarts, 1);
    assert.notEqual(slot.pid, victim.pid);
    for (let i = 0; i < 20; i++) assert.equal((await send(`${lb.url}/v2/`)).status, 200);
    assert.ok((await status(lb)).workers.every((w) => w.state === 'running'));
    // The crashed worker's counts live on: a counter going back would read as a reset to Prometheus.
    assert.equal(await requestsTotal(), 40);
  });

  it("a worker killed between two scrapes: /metrics keeps what it counted up to its last copy, taken every few seconds", async (t) => {
    const clock = new FakeClock();
    const lb = await startApp((await nodes(t, 1)).map((s) => s.url), { proxy: { workers: 2 } }, { clock });
    t.after(() => lb.close());
    const requestsTotal = async () => samplesOf(await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString()), 'harbor_lb_requests_total').reduce((a, x) => a + x.value, 0);
    await status(lb);
    for (let i = 0; i < 12; i++) assert.equal((await send(`${lb.url}/v2/`)).status, 200);
    // Never scraped: the control plane's own refresh copies each worker's metrics every 5 s.
    clock.advance(5_000);
    const s = await status(lb);
    const victim = s.workers.find((w) => w.requests > 0)!;
    process.kill(victim.pid!, 'SIGKILL');
    await lb.logs.waitFor((l) => l.event === 'worker_started' && l.worker === victim.index, 10_000);
    assert.equal(await requestsTotal(), 12, "the killed worker's requests still counted");
  });

  it('a stuck worker (SIGSTOP) is handed no new connection once silent for 2 s, and is killed and replaced after proxy.workerStallTimeout', async (t) => {
    const clock = new FakeClock();
    const lb = await startApp((await nodes(t, 1)).map((s) => s.url), { proxy: { workers: 2, workerStallTimeout: '10s' } }, { clock });
    t.after(() => lb.close());
    const victim = (await status(lb)).workers[0]!;
    process.kill(victim.pid!, 'SIGSTOP');
    t.after(() => {
      try {
        process.kill(victim.pid!, 'SIGKILL');
      } catch {
        // Killed already, as it should be.
      }
    });
    clock.advance(3_000);
    // The control plane's next round of questions finds it silent (its question to it times out).
    await status(lb);
    const late = await lb.logs.waitFor((l) => l.event === 'worker_stalled', 5000);
    assert.deepEqual([late.level, late.worker, late.killed], ['warn', victim.index, false]);
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 200, 'the other worker serves');
    assert.deepEqual((await status(lb)).workers.map((w) => w.stalled), [true, false]);
    // Each on its own connection: none goes to the stuck worker, where it would hang.
    const bounded = (p: Promise<{ status: number }>) => Promise.race([p.then((r) => r.status), new Promise<string>((r) => setTimeout(() => r('hung'), 5000).unref())]);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => bounded(send(`${lb.url}/v2/lib/a/manifests/${i}`))));
    assert.deepEqual(answers, [200, 200, 200, 200, 200, 200]);
    clock.advance(8_000);
    await status(lb);
    const killed = await lb.logs.waitFor((l) => l.event === 'worker_stalled' && l.killed === true, 5000);
    assert.equal(killed.level, 'error');
    const exited = await lb.logs.waitFor((l) => l.event === 'worker_exited', 5000);
    assert.deepEqual([exited.worker, exited.signal], [victim.index, 'SIGKILL']);
    await lb.logs.waitFor((l) => l.event === 'worker_started' && l.worker === victim.index, 10_000);
    const slot = (await status(lb)).workers.find((w) => w.index === victim.index)!;
    assert.deepEqual([slot.state, slot.restarts], ['running', 1]);
    assert.notEqual(slot.pid, victim.pid);
  });

  it('/-/ready says 503 while every worker is stuck, 200 once they answer again', async (t) => {
    const clock = new FakeClock();
    const lb = await startApp((await nodes(t, 1)).map((s) => s.url), { proxy: { workers: 2, workerStallTimeout: '0s' } }, { clock });
    t.after(() => lb.close());
    const pids = (await status(lb)).workers.map((w) => w.pid!);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    t.after(() =>
      pids.forEach((pid) => {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // Ended already.
        }
      }),
    );
    clock.advance(3_000);
    await status(lb);
    await lb.logs.waitFor((l) => l.event === 'worker_stalled' && l.worker === 1, 5000);
    await lb.logs.waitFor((l) => l.event === 'worker_stalled' && l.worker === 2, 5000);
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 503, 'nothing serves');
    for (const pid of pids) process.kill(pid, 'SIGCONT');
    await lb.logs.waitFor((l) => l.event === 'worker_stalled' && l.over === true, 5000);
    await status(lb);
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 200, 'serving again once they answer');
  });

  it('a reload reaches every worker: an added node takes traffic from all of them', async (t) => {
    const servers = await nodes(t, 2);
    const tmp = makeTempDir('workers-reload');
    t.after(() => tmp.remove());
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const write = (n: number) =>
      writeFileSync(
        file,
        [
          'listen: {address: 127.0.0.1, port: 0}',
          'admin: {address: 127.0.0.1, port: 0}',
          'nodes:',
          ...servers.slice(0, n).map((s, i) => `  - {name: n${i + 1}, url: "${s.url}"}`),
          'health: {enabled: false}',
          'balance: {policy: round-robin}',
          'log: {level: info}',
        ].join('\n'),
      );
    write(1);
    const lb = await startFromFile(file, {}, { workers: 2 });
    t.after(() => lb.app.close(0));
    write(2);
    assert.equal(lb.app.reload().ok, true);
    await status(lb);
    for (let i = 0; i < 30; i++) assert.equal((await send(`${lb.proxyUrl}/v2/lib/a/manifests/${i}`)).status, 200);
    const lines = await lb.logs.waitForRequests(30);
    const s = await status(lb);
    assert.ok(s.workers.every((w) => w.requests > 0));
    assert.ok(lines.filter((l) => l.node === 'n2').length >= 10, 'the added node takes its share');
    assert.equal(lb.logs.lines.filter((l) => l.event === 'config_reloaded').length, 1, 'the reload is logged once');
  });

  it('a token one worker verified is verified in the other: a client has one identity, whichever worker serves it', async (t) => {
    const tmp = makeTempDir('workers-token');
    t.after(tmp.remove);
    const sim = await startSimCluster(tmp.dir, ['none', 'none', 'none']);
    t.after(() => sim.close());
    const lb = await withWorkers(t, sim.nodes.map((n) => n.url), { token: { rootCert: sim.cluster.certFile, probe: { enabled: false } }, sticky: { keys: ['upload', 'session', 'client'] } });
    const tok = await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, { headers: { authorization: `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}` } });
    assert.equal(tok.status, 200);
    const { token } = JSON.parse(tok.body.toString()) as { token: string };
    await status(lb);
    // Fresh connections: both workers serve some of these, only one of them saw the token issued.
    for (let i = 0; i < 20; i++) assert.equal((await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const lines = (await lb.logs.waitForRequests(21)).filter((l) => l.route === 'v2');
    assert.deepEqual([...new Set(lines.map((l) => (l.client as { userFrom?: string }).userFrom))], ['token'], 'verified wherever it lands');
    assert.equal(new Set(lines.map((l) => l.node)).size, 1, 'one identity, one client pin');
    assert.ok((await status(lb)).workers.every((w) => w.requests > 0));
  });

  it('/-/ready says 503 while no worker serves the port, 200 once one is back', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 1)).map((s) => s.url));
    const ready = async () => (await send(`${lb.adminUrl}/-/ready`)).status;
    assert.equal(await ready(), 200);
    const pids = (await status(lb)).workers.map((w) => w.pid!);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await lb.logs.waitFor((l) => l.event === 'worker_exited' && l.worker === 1, 5000);
    await lb.logs.waitFor((l) => l.event === 'worker_exited' && l.worker === 2, 5000);
    // Replacements start after a back-off (at least 0.5 s): until then nothing serves.
    assert.equal(await ready(), 503);
    // The control plane holds the port: a client that connects meanwhile waits for a worker instead of being refused.
    const meanwhile = send(`${lb.url}/v2/`);
    await lb.logs.waitFor((l) => l.event === 'worker_started', 10_000);
    assert.equal(await ready(), 200);
    assert.equal((await meanwhile).status, 200, 'served once a worker is back');
  });

  it('hands each new connection to the worker holding the fewest, not in turn: closed ones make room where they were', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 1)).map((s) => s.url));
    const { port } = new URL(lb.url);
    const clients: Socket[] = [];
    t.after(() => clients.forEach((c) => c.destroy()));
    /** A keep-alive connection with one request answered on it, kept open (as docker's are), and the worker that served it. */
    const held = async (i: number): Promise<{ socket: Socket; worker: number }> => {
      const before = (await status(lb)).workers.map((w) => w.requests);
      const c = connect(Number(port), '127.0.0.1');
      clients.push(c);
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString('latin1')));
      c.write(`GET /v2/lib/a/manifests/${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      while (!/\r\n\r\nok$/.test(text)) await once(c, 'data');
      const after = (await status(lb)).workers.map((w) => w.requests);
      return { socket: c, worker: after.findIndex((n, k) => n > before[k]!) };
    };
    /** /-/status once every close has been told (batches of 10 ms); bounded. */
    const settled = async (want: number[]): Promise<number[]> => {
      let got: Array<number | null> = [];
      for (let i = 0; i < 200; i++) {
        got = (await status(lb)).workers.map((w) => w.connections);
        if (JSON.stringify(got) === JSON.stringify(want)) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      return got as number[];
    };
    const first = [];
    for (let i = 0; i < 4; i++) first.push(await held(i));
    assert.deepEqual(await settled([2, 2]), [2, 2], 'by count, not by a hash of the addresses');
    // The two on one worker close: it holds none, the other two.
    const emptied = first[0]!.worker;
    for (const h of first.filter((h) => h.worker === emptied)) h.socket.destroy();
    const want = emptied === 0 ? [0, 2] : [2, 0];
    assert.deepEqual(await settled(want), want);
    // In turn, the next two would go one to each; by count both go where there is room.
    const next = [await held(4), await held(5)];
    assert.deepEqual(next.map((h) => h.worker), [emptied, emptied]);
    assert.deepEqual(await settled([2, 2]), [2, 2]);
  });

  it('a worker that dies with connections on their way to it: each of those clients sees its connection closed, none hangs', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 1)).map((s) => s.url));
    const { port } = new URL(lb.url);
    const victim = (await status(lb)).workers[0]!;
    // Stopped, it reads nothing from its channel: sockets sent to it wait there, unacknowledged.
    process.kill(victim.pid!, 'SIGSTOP');
    let answered = 0;
    let fourAnswered: () => void = () => {};
    const outcomes = Array.from({ length: 10 }, (_, i) =>
      new Promise<string>((resolve) => {
        const c = connect(Number(port), '127.0.0.1', () => c.write(`GET /v2/lib/a/manifests/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let text = '';
        c.on('data', (d: Buffer) => (text += d.toString('latin1')));
        c.on('error', () => {});
        // Bounded: a connection nobody serves or closes fails here, not on the test's timeout.
        const guard = setTimeout(() => (resolve('hung'), c.destroy()), 10_000);
        c.on('close', () => {
          clearTimeout(guard);
          const ok = text.startsWith('HTTP/1.1 200');
          if (ok && ++answered === 4) fourAnswered();
          resolve(ok ? 'answered' : 'closed');
        });
      }),
    );
    // Equal counts take turns: once the other worker answered four, the stopped one was sent at least three.
    await new Promise<void>((resolve) => (fourAnswered = resolve));
    process.kill(victim.pid!, 'SIGKILL');
    const results = await Promise.all(outcomes);
    assert.equal(results.filter((r) => r === 'hung').length, 0, JSON.stringify(results));
    assert.ok(results.filter((r) => r === 'answered').length >= 1, 'the other worker served its share');
    assert.ok(results.filter((r) => r === 'closed').length >= 1, "the dead worker's share was closed");
  });

  it('a worker draining on its own (SIGTERM) is handed no new connections; the other takes them', async (t) => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    t.after(() => release!());
    const servers = await nodes(t, 1, (req, res) => {
      req.resume();
      if (req.url === '/slow') void held.then(() => res.end('done'));
      else res.end('ok');
    });
    const lb = await withWorkers(t, servers.map((s) => s.url));
    const pending = send(`${lb.url}/slow`);
    let busy: WorkerStatus | undefined;
    for (let i = 0; i < 200 && busy === undefined; i++) {
      busy = (await status(lb)).workers.find((w) => w.inflight === 1);
      if (busy === undefined) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(busy !== undefined, 'the slow request is on a worker');
    // It drains: its request in flight goes on, for up to listen.shutdownGrace.
    process.kill(busy.pid!, 'SIGTERM');
    let seen: WorkerStatus | undefined;
    for (let i = 0; i < 200 && seen?.state !== 'stopping'; i++) {
      seen = (await status(lb)).workers.find((w) => w.index === busy.index);
      if (seen?.state !== 'stopping') await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(seen?.state, 'stopping', 'the control plane knows it drains');
    for (let i = 0; i < 6; i++) assert.equal((await send(`${lb.url}/v2/lib/a/manifests/${i}`)).status, 200, 'each new connection goes to the worker that serves');
    release!();
    assert.equal((await pending).body.toString(), 'done', 'the draining worker finished its request');
    const exited = await lb.logs.waitFor((l) => l.event === 'worker_exited' && l.worker === busy.index, 10_000);
    assert.deepEqual([exited.level, exited.code, exited.drained], ['info', 0, true], 'said as a drain at info, not as a failure');
  });

  it('a handed connection is held to listen.headersTimeout as an accepted one is', async (t) => {
    const lb = await withWorkers(t, (await nodes(t, 1)).map((s) => s.url), { listen: { headersTimeout: '1s' } });
    const { port } = new URL(lb.url);
    const c = connect(Number(port), '127.0.0.1', () => c.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n'));
    let text = '';
    c.on('data', (d: Buffer) => (text += d.toString('latin1')));
    c.on('error', () => {});
    // Bounded: a connection never cut fails here, not on the test's timeout.
    const guard = setTimeout(() => c.destroy(), 10_000);
    t.after(() => clearTimeout(guard));
    await once(c, 'close');
    assert.match(text, /^HTTP\/1\.1 408 /);
  });

  it('close() lets every worker finish its requests in flight', async (t) => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const servers = await nodes(t, 1, (req, res) => {
      req.resume();
      if (req.url === '/slow') void held.then(() => res.end('done'));
      else res.end('ok');
    });
    const lb = await startApp(servers.map((s) => s.url), { proxy: { workers: 2 } });
    const pending = send(`${lb.url}/slow`);
    // Wait until the request is on a node, then ask to close.
    while ((await status(lb)).workers.every((w) => w.inflight === 0)) await new Promise((r) => setImmediate(r));
    const closing = lb.app.close(10_000);
    release!();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'done');
    await closing;
  });
});
