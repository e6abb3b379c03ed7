import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { FakeClock } from '../support/fake-clock.js';
import { send } from '../support/http-client.js';
import { startServer } from '../support/servers.js';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

// Found in review (issue 18): a node that accepts connections and never answers was out only
// after its first request timed out (proxy.headersTimeout, 60 s), and that request waited as long.
describe('a hung node', () => {
  it('is checked once a request has waited 2 s for its answer, taken out by the failed check, and the waiting GET goes to another node', async (t) => {
    const hung = await startServer(() => {});
    const good = await startServer((_q, r) => r.end('from the good node'));
    t.after(() => Promise.all([hung.close(), good.close()]));
    const clock = new FakeClock(Date.now());
    // Checks off (a liveness check then) with a short timeout; the request timeout is the default 60 s.
    const lb = await startApp([hung.url, good.url], { health: { enabled: false, timeout: '300ms' }, balance: { policy: 'round-robin' } }, { clock });
    t.after(() => lb.close());
    const pull = send(`${lb.url}/v2/a/blobs/sha256:1`);
    for (let i = 0; i < 20 && lb.app.nodes.all[0]!.traffic.inflight === 0; i++) await settle();
    assert.equal(lb.app.nodes.all[0]!.traffic.inflight, 1, 'the GET is waiting on the hung node');
    clock.advance(1_500);
    await settle();
    assert.equal(lb.logs.lines.filter((l) => l.event === 'node_state').length, 0, 'under 2 s of waiting: no check yet');
    clock.advance(1_000);
    const out = await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy', 10_000, 'n1 taken out');
    assert.match(String(out.why), /a request waited 2s for its answer and harbor-lb's check then failed \(health check failed: no answer within 300 ms\)/);
    const r = await pull;
    assert.deepEqual([r.status, r.body.toString()], [200, 'from the good node']);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual([line!.node, line!.reason, line!.attempts], ['n2', 'retried', 2]);
  });

  it("an upload's wait is the node's only when the node is what it waits on: a client slow to send makes no check of a healthy node, a node sitting on a whole body is checked", async (t) => {
    const held: http.ServerResponse[] = [];
    const node = await startServer((q, r) => {
      q.resume();
      q.on('end', () => (q.url!.endsWith('/hold') ? held.push(r) : r.writeHead(202).end()));
    });
    t.after(() => node.close());
    const clock = new FakeClock(Date.now());
    // Checks off; the check traffic asks for is this probe, which notes each check as it starts.
    const checked: string[] = [];
    const healthProbe = async (n: { name: string }) => (checked.push(n.name), { ok: true, detail: 'alive' });
    const lb = await startApp([node.url], { health: { enabled: false } }, { clock, healthProbe });
    t.after(() => lb.close());
    const upload = (path: string) => {
      const req = http.request(`${lb.url}/v2/a/blobs/uploads/${path}`, { method: 'PATCH', agent: false });
      const answer = new Promise<number>((resolve, reject) => {
        req.on('response', (res) => (res.resume(), resolve(res.statusCode!)));
        req.on('error', reject);
      });
      return { req, answer };
    };

    // The client sends part of its body, then takes 10 s for the rest.
    const slow = upload('u1');
    slow.req.write(Buffer.alloc(20_000));
    for (let i = 0; i < 50 && lb.app.nodes.all[0]!.traffic.inflight === 0; i++) await settle();
    assert.equal(lb.app.nodes.all[0]!.traffic.inflight, 1, 'the upload is under way');
    for (let s = 0; s < 20; s++) {
      clock.advance(500);
      await settle();
    }
    assert.deepEqual(checked, [], 'no check while the client is still sending');
    slow.req.end(Buffer.alloc(20_000));
    assert.equal(await slow.answer, 202);

    // The node has a whole body and sits on it: that is the node's time.
    const sitting = upload('u2/hold');
    sitting.req.end(Buffer.alloc(20_000));
    for (let i = 0; i < 200 && held.length === 0; i++) await settle();
    assert.equal(held.length, 1, 'the node has the whole request');
    clock.advance(2_500);
    const line = await lb.logs.waitFor((l) => l.event === 'node_suspected', 10_000, 'the node is checked');
    assert.deepEqual([line.cause, line.cleared, checked], ['slow-answer', true, ['n1']]);
    held[0]!.writeHead(202).end();
    assert.equal(await sitting.answer, 202);
  });

  it('a node that stops reading an upload is checked once it has taken nothing of it for 2 s, and taken out by the failed check', async (t) => {
    // Takes the connection and never reads from it, as a registry stopped with SIGSTOP.
    const hung = net.createServer((s) => s.pause());
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const sockets: net.Socket[] = [];
    hung.on('connection', (s) => sockets.push(s));
    t.after(() => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), hung.close(() => resolve()))));
    const clock = new FakeClock(Date.now());
    const checked: string[] = [];
    const healthProbe = async (n: { name: string }) => (checked.push(n.name), { ok: false, detail: 'no answer within 2000 ms' });
    const lb = await startApp([`http://127.0.0.1:${(hung.address() as net.AddressInfo).port}`], { health: { enabled: false } }, { clock, healthProbe });
    t.after(() => lb.close());
    const client = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    client.on('error', () => {});
    t.after(() => client.destroy());
    const size = 256 * 1024 * 1024;
    client.write(`PUT /v2/library/a/blobs/uploads/u1?digest=sha256:1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    // The client sends as fast as it may; the body moves until the buffers on the way are full,
    // and from then on the node takes nothing (however large the host's socket buffers).
    const chunk = Buffer.alloc(1024 * 1024);
    let written = 0;
    const more = () => {
      while (written < size && client.write(chunk)) written += chunk.length;
    };
    client.on('drain', () => {
      written += chunk.length;
      more();
    });
    more();
    for (let step = 0; step < 200 && checked.length === 0; step++) {
      clock.advance(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(checked, ['n1'], 'the node was checked');
    const out = await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'unhealthy', 10_000, 'n1 taken out');
    assert.match(String(out.why), /a request waited 2s for its answer and harbor-lb's check then failed/);
  });
});
