import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { parseExposition, samplesOf } from '../support/prometheus-text.js';
import { deadPort, startServer } from '../support/servers.js';

const BLOB = 256 * 1024;

async function startNodes(n: number): Promise<NodeProcess[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startNodeProcess(`n${i + 1}`)));
}

describe('failover', () => {
  it('a node killed (SIGKILL) during 50 pulls fails no pull, is marked unhealthy and comes back by itself', async (t) => {
    const nodes = await startNodes(3);
    t.after(() => Promise.all(nodes.map((n) => n.proc.stop())));
    const lb = await startApp(
      nodes.map((n) => n.url),
      { health: { enabled: true, interval: '200ms', timeout: '500ms', healthyAfter: 2, passive: { ejectFor: '1s' } } },
    );
    t.after(() => lb.close());
    await Promise.all(['n1', 'n2', 'n3'].map((n) => lb.logs.waitFor((l) => l.event === 'node_state' && l.node === n && l.to === 'healthy')));

    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const statuses: number[] = [];
    let killedAt = 0;
    for (let i = 0; i < 50; i++) {
      if (i === 10) {
        nodes[1]!.proc.kill('SIGKILL');
        killedAt = performance.now();
      }
      const r = await send(`${lb.url}/v2/library/app/blobs/sha256:${i}`, { agent });
      statuses.push(r.body.length === BLOB ? r.status : -r.status);
    }
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every pull succeeded with the whole blob');

    const down = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'unhealthy');
    t.diagnostic(`n2 marked unhealthy ${(Date.parse(String(down.time)) - (performance.timeOrigin + killedAt)).toFixed(0)} ms after SIGKILL: ${String(down.why)}`);
    const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; state: string }> };
    assert.equal(status.nodes.find((n) => n.name === 'n2')!.state, 'unhealthy');
    const failovers = lb.logs.requests().filter((l) => l.reason === 'failover');
    for (const l of failovers) assert.equal(l.status, 200);

    // Restarted on the same port, it is taken back without anyone asking.
    nodes[1] = await startNodeProcess('n2', nodes[1]!.port);
    const back = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'healthy' && Date.parse(String(l.time)) > Date.parse(String(down.time)));
    // Back by its checks passing, or by answering a request of harbor-lb's first: either is by itself.
    assert.match(String(back.why), /\d+ checks passed in a row|it answers again/);
  });

  it('a hung node (SIGSTOP) is ejected by timeout and its GETs are retried elsewhere', async (t) => {
    const nodes = await startNodes(2);
    t.after(async () => {
      nodes[0]!.proc.kill('SIGCONT');
      await Promise.all(nodes.map((n) => n.proc.stop()));
    });
    const lb = await startApp(
      nodes.map((n) => n.url),
      { health: { enabled: true, interval: '200ms', timeout: '300ms', unhealthyAfter: 2 }, proxy: { headersTimeout: '500ms' }, balance: { policy: 'round-robin' } },
    );
    t.after(() => lb.close());
    await Promise.all(['n1', 'n2'].map((n) => lb.logs.waitFor((l) => l.event === 'node_state' && l.node === n && l.to === 'healthy')));
    nodes[0]!.proc.kill('SIGSTOP');
    // Round robin sends one of these two to the hung node first.
    const [a, b] = await Promise.all([send(`${lb.url}/v2/r/blobs/sha256:a`), send(`${lb.url}/v2/r/blobs/sha256:b`)]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const retried = lb.logs.requests().filter((l) => l.reason === 'retried');
    assert.equal(retried.length, 1, 'the GET that hung was sent again');
    assert.equal(retried[0]!.node, 'n2');
    assert.equal(retried[0]!.attempts, 2);
    const down = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy');
    assert.match(String(down.why), /no answer within 300 ms|requests failed in a row/);
  });

  it('an upload in flight on a node that dies fails cleanly with a registry error, never hangs', { timeout: 30_000 }, async (t) => {
    const [node] = await startNodes(1);
    t.after(() => node!.proc.stop());
    const lb = await startApp([node!.url]);
    t.after(() => lb.close());
    const CHUNK = Buffer.alloc(64 * 1024, 1);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${lb.url}/v2/r/blobs/uploads/u1`, { method: 'PATCH', agent: false, headers: { 'content-length': 512 * 1024 * 1024 } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < 512 * 1024 * 1024) {
          sent += CHUNK.length;
          if (sent === 4 * 1024 * 1024) node!.proc.kill('SIGKILL');
          if (!req.write(CHUNK)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    // 502 when the node died with the body half sent; 503 when it died before the connection was made.
    assert.ok(answer.status === 502 || answer.status === 503, String(answer.status));
    assert.equal((JSON.parse(answer.body) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNAVAILABLE');
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.equal(line.attempts, 1, 'a PATCH whose body was partly sent is never sent again');
  });

  it("stops sending pulls to a node whose health says registry is unhealthy (it keeps the UI), but not for jobservice", async (t) => {
    const components = [
      { core: 'healthy', registry: 'unhealthy', jobservice: 'healthy' },
      { core: 'healthy', registry: 'healthy', jobservice: 'unhealthy' },
      { core: 'healthy', registry: 'healthy', jobservice: 'healthy' },
    ];
    const nodes = await Promise.all(
      components.map((c) =>
        startServer((req, res) => {
          if (req.url === '/api/v2.0/health') {
            res.setHeader('content-type', 'application/json');
            const list = Object.entries(c).map(([name, status]) => ({ name, status }));
            return res.end(JSON.stringify({ status: list.every((x) => x.status === 'healthy') ? 'healthy' : 'unhealthy', components: list }));
          }
          res.end('manifest');
        }),
      ),
    );
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    // Round robin: 12 UI requests reach every node. Balanced by least requests, each goes to one of
    // the three at random, and 12 missed n1 in about 2% of runs.
    const lb = await startApp(nodes.map((n) => n.url), { health: { enabled: true, interval: '1m' }, balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    // n1's registry is down: it leaves the registry routes (health.componentRoutes), and stays for the rest.
    await lb.logs.waitFor((l) => l.event === 'node_routes' && l.node === 'n1' && Array.isArray(l.out) && l.out.includes('v2'));
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'healthy');
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n3' && l.to === 'healthy');
    for (let i = 0; i < 30; i++) assert.equal((await send(`${lb.url}/v2/library/a/manifests/${i}`)).status, 200);
    const perNode = new Set(lb.logs.requests().map((l) => l.node));
    assert.deepEqual([...perNode].sort(), ['n2', 'n3']);
    assert.match(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).routesOutWhy, /registry: unhealthy/);
    for (let i = 0; i < 12; i++) assert.equal((await send(`${lb.url}/api/v2.0/projects?i=${i}`)).status, 200);
    assert.ok(lb.logs.requests().some((l) => l.route === 'ui' && l.node === 'n1'), 'n1 still serves the UI and API');
  });

  it('with every node down: 503 with Retry-After, not ready; recovers by itself', async (t) => {
    const [node] = await startNodes(1);
    t.after(() => node!.proc.stop());
    const lb = await startApp([node!.url], { health: { enabled: true, interval: '200ms', healthyAfter: 1 } });
    t.after(() => lb.close());
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'healthy');
    await node!.proc.stop();
    const down = await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'unhealthy');
    const r = await send(`${lb.url}/v2/`);
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '5');
    assert.equal((JSON.parse(r.body.toString()) as { errors: Array<{ code: string; message: string }> }).errors[0]!.message, 'no Harbor node is available');
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 503);
    const again = await startNodeProcess('n1', node!.port);
    t.after(() => again.proc.stop());
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'healthy' && l !== down && Date.parse(String(l.time)) >= Date.parse(String(down.time)));
    assert.equal((await send(`${lb.adminUrl}/-/ready`)).status, 200);
    assert.equal((await send(`${lb.url}/v2/`)).status, 200);
  });

  it('4xx answers never count against a node', async (t) => {
    const node = await startServer((req, res) => {
      res.writeHead(req.url!.includes('denied') ? 401 : 404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"no","detail":null}]}');
    });
    t.after(() => node.close());
    const lb = await startApp([node.url], { health: { enabled: false, passive: { consecutiveFailures: 2 } } });
    t.after(() => lb.close());
    for (let i = 0; i < 10; i++) await send(`${lb.url}/v2/${i % 2 ? 'denied' : 'missing'}/manifests/x`);
    const n1 = lb.app.nodes.get('n1')!;
    assert.equal(n1.traffic.failures, 0);
    assert.notEqual(n1.state, 'unhealthy');
  });

  it('retries a GET that got 503 on another node, and passes the 503 on when there is none', async (t) => {
    const sick = await startServer((_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain' });
      r.end('busy');
    });
    const ok = await startServer((_q, r) => r.end('fine'));
    t.after(() => Promise.all([sick.close(), ok.close()]));
    const lb = await startApp([sick.url, ok.url], { balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    const r = await send(`${lb.url}/v2/x/manifests/1`);
    assert.equal(r.body.toString(), 'fine');
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.deepEqual([line.reason, line.attempts, line.node], ['retried', 2, 'n2']);

    const alone = await startApp([sick.url]);
    t.after(() => alone.close());
    const passed = await send(`${alone.url}/v2/x/manifests/1`);
    assert.equal(passed.status, 503);
    assert.equal(passed.body.toString(), 'busy', "the node's own answer when it is the only one");
  });

  it("gives the client a node's own 503 held for a retry when the retry reaches no node, for GET and HEAD", async (t) => {
    const sick = await startServer((_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '7', 'x-from': 'sick' });
      r.end('busy');
    });
    const down = `http://127.0.0.1:${await deadPort()}`;
    t.after(() => sick.close());
    for (const method of ['GET', 'HEAD']) {
      // Round robin tries the sick node first, then the one that refuses connections.
      const lb = await startApp([sick.url, down], { balance: { policy: 'round-robin' } });
      t.after(() => lb.close());
      const r = await send(`${lb.url}/v2/x/manifests/1`, { method });
      assert.deepEqual(
        [r.status, r.body.toString(), r.headers['retry-after'], r.headers['x-from']],
        [503, method === 'GET' ? 'busy' : '', '7', 'sick'],
        `${method}: the sick node's answer, not harbor-lb's`,
      );
      const line = await lb.logs.waitFor((l) => l.event === 'request');
      assert.deepEqual([line.node, line.reason, line.attempts, line.status, line.error], ['n1', 'balanced', 2, 503, undefined], method);
    }
  });

  it('a held 503 over 64 KiB with no length declared reaches the client whole and ends (passed on, not retried)', { timeout: 20_000 }, async (t) => {
    const big = Buffer.alloc(70_000, 'x');
    const sick = await startServer((_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain' }); // chunked: the size is not known up front
      r.write(big.subarray(0, 30_000));
      setImmediate(() => r.end(big.subarray(30_000)));
    });
    const ok = await startServer((_q, r) => r.end('fine'));
    t.after(() => Promise.all([sick.close(), ok.close()]));
    const lb = await startApp([sick.url, ok.url], { balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    const r = await send(`${lb.url}/v2/x/manifests/1`);
    assert.deepEqual([r.status, r.body.length], [503, 70_000]);
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.deepEqual([line.node, line.attempts, line.bytesOut, line.error], ['n1', 1, 70_000, undefined]);
  });

  it('a node that answers 503 and then drips its body is not waited on: the GET goes to the next node at once', { timeout: 20_000 }, async (t) => {
    const drip = await startServer((_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain', 'content-length': '10' });
      r.write('busy'); // and the rest never comes
    });
    const ok = await startServer((_q, r) => r.end('fine'));
    t.after(() => Promise.all([drip.close(), ok.close()]));
    const lb = await startApp([drip.url, ok.url], { balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    const r = await send(`${lb.url}/v2/x/manifests/1`);
    assert.deepEqual([r.status, r.body.toString()], [200, 'fine']);
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.deepEqual([line.node, line.reason, line.attempts], ['n2', 'retried', 2]);
    // The held body gets 1 s; without that deadline the wait ends only when the answer watch takes
    // the node out (4 s here) or at the node's idle timeout (15 min by default).
    assert.ok(Number(line.durationMs) < 3000, `answered after ${String(line.durationMs)} ms`);
    // Retried for the 503 it answered, not because the wait for it ran out and the node was taken out.
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.deepEqual(
      samplesOf(families, 'harbor_lb_retries_total').map((s) => [s.labels, s.value]),
      [[{ route: 'v2', node: 'n1', reason: 'retried', cause: 'gateway_error' }, 1]],
    );
    assert.equal(lb.logs.lines.filter((l) => l.node === 'n1' && l.event !== 'request' && l.event !== 'node_state').length, 0, 'nothing said against n1');
  });

  it('a node that cuts the body of its 503 is retried for the 503 it answered, not as a node that failed to answer', async (t) => {
    const cut = await startServer((_q, r) => {
      r.writeHead(503, { 'content-type': 'text/plain', 'content-length': '10' });
      r.write('busy', () => r.socket?.destroy());
    });
    const ok = await startServer((_q, r) => r.end('fine'));
    t.after(() => Promise.all([cut.close(), ok.close()]));
    const lb = await startApp([cut.url, ok.url], { balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    assert.equal((await send(`${lb.url}/v2/x/manifests/1`)).body.toString(), 'fine');
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.deepEqual(
      samplesOf(families, 'harbor_lb_retries_total').map((s) => [s.labels, s.value]),
      [[{ route: 'v2', node: 'n1', reason: 'retried', cause: 'gateway_error' }, 1]],
    );
  });

  it("a HEAD's 503 is retried whatever Content-Length it declares (a HEAD has no body)", async (t) => {
    const sick = await startServer((_q, r) => {
      r.writeHead(503, { 'content-length': '100000' });
      r.end();
    });
    const ok = await startServer((_q, r) => r.end('fine'));
    t.after(() => Promise.all([sick.close(), ok.close()]));
    const lb = await startApp([sick.url, ok.url], { balance: { policy: 'round-robin' } });
    t.after(() => lb.close());
    const r = await send(`${lb.url}/v2/x/manifests/1`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    const line = await lb.logs.waitFor((l) => l.event === 'request');
    assert.deepEqual([line.node, line.reason, line.attempts], ['n2', 'retried', 2]);
  });
});
