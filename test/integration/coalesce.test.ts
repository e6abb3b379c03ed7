import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApp, type StartedApp } from '../support/app.js';
import { startFromFile } from '../support/file-app.js';
import { makeTempDir } from '../support/tmp.js';
import { send } from '../support/http-client.js';
import { parseExposition, samplesOf } from '../support/prometheus-text.js';
import { startServer } from '../support/servers.js';

const BLOB = randomBytes(3 * 1024 * 1024 + 17);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const PATH = `/v2/lib/app/blobs/${DIGEST}`;

/**
 * A registry node for one blob: the registry's own answers by Authorization (Bearer good: 200;
 * Bearer other: 404, another repository's token; none: 401). A GET sends half the blob, then
 * waits for the test's release(); `wrong` sends other bytes of the same length.
 */
async function blobNode(t: { after: (fn: () => unknown) => void }, opts: { wrong?: boolean; holdHead?: boolean } = {}) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let answer!: () => void;
  const answered = opts.holdHead ? new Promise<void>((resolve) => (answer = resolve)) : Promise.resolve();
  const counts = { get: 0, head: 0, headWaiters: [] as Array<{ n: number; resolve: () => void }> };
  const body = opts.wrong ? Buffer.from(BLOB).fill(7, 100, 200) : BLOB;
  const server = await startServer((req, res) => {
    req.resume();
    if (req.url !== PATH) return void res.writeHead(404).end();
    const auth = req.headers.authorization;
    if (auth !== 'Bearer good') {
      const status = auth === 'Bearer other' ? 404 : 401;
      const text = JSON.stringify({ errors: [{ code: status === 404 ? 'BLOB_UNKNOWN' : 'UNAUTHORIZED', message: 'no' }] });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(status === 401 ? { 'www-authenticate': 'Bearer realm="http://x/service/token"' } : {}) });
      return void res.end(req.method === 'HEAD' ? undefined : text);
    }
    const head = { 'content-type': 'application/octet-stream', 'content-length': BLOB.length, 'docker-content-digest': DIGEST };
    if (req.method === 'HEAD') {
      counts.head++;
      for (const w of counts.headWaiters) if (counts.head >= w.n) w.resolve();
      res.writeHead(200, head);
      return void res.end();
    }
    counts.get++;
    void answered.then(() => {
      res.writeHead(200, head);
      res.write(body.subarray(0, BLOB.length >> 1));
      void released.then(() => res.end(body.subarray(BLOB.length >> 1)));
    });
  });
  t.after(() => server.close());
  const heads = (n: number) => new Promise<void>((resolve) => (counts.head >= n ? resolve() : counts.headWaiters.push({ n, resolve })));
  return { url: server.url, counts, release, heads, answer: () => answer() };
}

interface Pulled {
  status: number;
  bytes: number;
  sha: string;
  aborted: boolean;
}

/** A GET of the blob on its own connection; resolves once the body ended or was cut. `paused` reads nothing until resume(). */
function pull(lb: StartedApp, auth: string | undefined, opts: { onHead?: () => void; paused?: Promise<void> } = {}): Promise<Pulled> {
  return new Promise((resolve) => {
    const req = http.get(`${lb.url}${PATH}`, { agent: false, headers: auth ? { authorization: auth } : {} }, (res) => {
      opts.onHead?.();
      const hash = createHash('sha256');
      let bytes = 0;
      let aborted = false;
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      const consume = () =>
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
      if (opts.paused) void opts.paused.then(consume);
      else consume();
      res.on('close', () => resolve({ status: res.statusCode ?? 0, bytes, sha: `sha256:${hash.digest('hex')}`, aborted: aborted || !res.complete }));
    });
    req.on('error', () => resolve({ status: 0, bytes: 0, sha: '', aborted: true }));
  });
}

const withCoalescing = (urls: string[], extra: Parameters<typeof startApp>[1] = {}) => startApp(urls, { coalesce: { enabled: true }, ...extra });

/** A blob node and harbor-lb in front of it with coalescing on, both closed after the test. */
async function setup(t: { after: (fn: () => unknown) => void }, nodeOpts: Parameters<typeof blobNode>[1] = {}) {
  const node = await blobNode(t, nodeOpts);
  const lb = await withCoalescing([node.url]);
  t.after(() => lb.close());
  return { node, lb };
}

/** The pull that leads: returned once its answer's head arrived (the node then holds the rest until release()). */
async function leadingPull(lb: StartedApp, paused?: Promise<void>): Promise<{ pulled: Promise<Pulled> }> {
  let headed!: () => void;
  const started = new Promise<void>((r) => (headed = r));
  const pulled = pull(lb, 'Bearer good', { onHead: headed, paused });
  await started;
  return { pulled };
}

describe('coalescing identical blob pulls (coalesce.enabled)', () => {
  it('five clients pulling one digest while the first is under way: one node read, each asked of the registry, everyone gets the whole blob', async (t) => {
    const { node, lb } = await setup(t);
    const leader = (await leadingPull(lb)).pulled;
    const joiners = Array.from({ length: 4 }, () => pull(lb, 'Bearer good'));
    await node.heads(4);
    node.release();
    const all = await Promise.all([leader, ...joiners]);
    for (const p of all) assert.deepEqual(p, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1, 'one read from the node');
    assert.equal(node.counts.head, 4, "each joining client's own HEAD");
    const lines = await lb.logs.waitForRequests(5);
    assert.deepEqual(lines.map((l) => l.reason).sort(), ['balanced', 'coalesced', 'coalesced', 'coalesced', 'coalesced']);
    for (const l of lines) assert.equal(l.node, 'n1');
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.equal(samplesOf(families, 'harbor_lb_coalesced_requests_total')[0]!.value, 4);
    assert.equal(samplesOf(families, 'harbor_lb_coalesced_bytes_total')[0]!.value, 4 * BLOB.length);
  });

  it("a client the registry refuses while a pull is under way gets the registry's own 401 or 404 and no byte of the blob", async (t) => {
    const { node, lb } = await setup(t);
    const leader = (await leadingPull(lb)).pulled;
    const anonymous = await send(`${lb.url}${PATH}`);
    const otherRepo = await send(`${lb.url}${PATH}`, { headers: { authorization: 'Bearer other' } });
    node.release();
    assert.equal((await leader).sha, DIGEST);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Bearer realm=/);
    assert.equal(otherRepo.status, 404);
    for (const r of [anonymous, otherRepo]) assert.ok(!r.body.includes(BLOB.subarray(0, 64)), 'no blob bytes');
    const lines = await lb.logs.waitForRequests(3);
    assert.equal(lines.filter((l) => l.reason === 'coalesced').length, 0);
  });

  it('a body that does not match its digest: every client sees a cut transfer, none gets the whole wrong blob', async (t) => {
    const { node, lb } = await setup(t, { wrong: true });
    const leader = (await leadingPull(lb)).pulled;
    const joiners = Array.from({ length: 2 }, () => pull(lb, 'Bearer good'));
    await node.heads(2);
    node.release();
    for (const p of await Promise.all([leader, ...joiners])) {
      assert.equal(p.aborted, true);
      assert.ok(p.bytes < BLOB.length, `${p.bytes} of ${BLOB.length} bytes`);
    }
    const lines = await lb.logs.waitForRequests(3);
    assert.deepEqual(lines.map((l) => l.error).sort(), ['BLOB_DIGEST_MISMATCH', 'NODE_CUT_RESPONSE: coalesced pull', 'NODE_CUT_RESPONSE: coalesced pull']);
  });

  it('a joined client that reads nothing holds nobody: the others finish, it finishes when it reads', async (t) => {
    const { node, lb } = await setup(t);
    const leader = (await leadingPull(lb)).pulled;
    let resume!: () => void;
    const slow = pull(lb, 'Bearer good', { paused: new Promise<void>((r) => (resume = r)) });
    const fast = pull(lb, 'Bearer good');
    await node.heads(2);
    node.release();
    assert.equal((await leader).sha, DIGEST);
    assert.equal((await fast).sha, DIGEST);
    resume();
    assert.deepEqual(await slow, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1);
  });

  it('a leading client that reads nothing holds nobody: the node is read on for the others, the leader gets the rest from the spill file', async (t) => {
    const { node, lb } = await setup(t);
    let resume!: () => void;
    const leader = (await leadingPull(lb, new Promise<void>((r) => (resume = r)))).pulled;
    const joiners = Array.from({ length: 2 }, () => pull(lb, 'Bearer good'));
    await node.heads(2);
    node.release();
    for (const p of await Promise.all(joiners)) assert.equal(p.sha, DIGEST);
    resume();
    assert.deepEqual(await leader, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1);
  });

  it('the leading client leaving cuts only itself: the clients that joined get the whole blob', async (t) => {
    const { node, lb } = await setup(t);
    let leaderReq!: http.ClientRequest;
    const leaderStarted = new Promise<void>((resolve) => {
      leaderReq = http.get(`${lb.url}${PATH}`, { agent: false, headers: { authorization: 'Bearer good' } }, (res) => {
        res.on('error', () => {});
        resolve();
      });
      leaderReq.on('error', () => {});
    });
    await leaderStarted;
    const joiners = Array.from({ length: 2 }, () => pull(lb, 'Bearer good'));
    await node.heads(2);
    leaderReq.destroy();
    node.release();
    for (const p of await Promise.all(joiners)) assert.deepEqual(p, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1);
    const leaderLine = (await lb.logs.waitForRequests(3)).find((l) => l.reason !== 'coalesced')!;
    assert.equal(leaderLine.error, 'CLIENT_GONE');
  });

  it('clients arriving before the node answered the first one wait for that answer and join: one node read for a herd', async (t) => {
    const { node, lb } = await setup(t, { holdHead: true });
    const leader = pull(lb, 'Bearer good');
    while (node.counts.get === 0) await new Promise((r) => setImmediate(r));
    const herd = Array.from({ length: 6 }, () => pull(lb, 'Bearer good'));
    // All seven are in harbor-lb before the node has answered anything.
    const inflight = async () => (JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { workers: Array<{ inflight: number }> }).workers[0]!.inflight;
    while ((await inflight()) < 7) await new Promise((r) => setImmediate(r));
    node.answer();
    await node.heads(6);
    node.release();
    for (const p of await Promise.all([leader, ...herd])) assert.deepEqual(p, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1, 'one read from the node for the whole herd');
  });

  it('with two request workers, a herd spread over both reads the blob from the nodes once per host', async (t) => {
    const node = await blobNode(t, { holdHead: true });
    const lb = await withCoalescing([node.url], { proxy: { workers: 2 } });
    t.after(() => lb.close());
    const leader = pull(lb, 'Bearer good');
    while (node.counts.get === 0) await new Promise((r) => setImmediate(r));
    const herd = Array.from({ length: 12 }, () => pull(lb, 'Bearer good'));
    const status = async () => JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { workers: Array<{ inflight: number; requests: number }> };
    while ((await status()).workers.reduce((a, w) => a + w.inflight, 0) < 13) await new Promise((r) => setImmediate(r));
    node.answer();
    await node.heads(12);
    node.release();
    for (const p of await Promise.all([leader, ...herd])) assert.deepEqual(p, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.equal(node.counts.get, 1, 'one read from the node for both workers');
    assert.ok((await status()).workers.every((w) => w.requests > 0), 'both workers served some of the herd');
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.equal(samplesOf(families, 'harbor_lb_coalesced_requests_total')[0]!.value, 12);
  });

  it('a straggler asking just after a verified pull ended reads that copy, after its own HEAD: no second node read', async (t) => {
    const { node, lb } = await setup(t);
    const leader = (await leadingPull(lb)).pulled;
    node.release();
    assert.equal((await leader).sha, DIGEST);
    const straggler = await pull(lb, 'Bearer good');
    assert.deepEqual(straggler, { status: 200, bytes: BLOB.length, sha: DIGEST, aborted: false });
    assert.deepEqual([node.counts.get, node.counts.head], [1, 1]);
    assert.equal((await lb.logs.waitForRequests(2))[1]!.reason, 'coalesced');
  });

  it('a reload turns coalescing off live: pulls after it each read from the node', async (t) => {
    const node = await blobNode(t);
    const tmp = makeTempDir('coalesce-reload');
    t.after(() => tmp.remove());
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const yaml = (enabled: boolean) => ['listen: {address: 127.0.0.1, port: 0}', 'admin: {address: 127.0.0.1, port: 0}', `nodes: [{name: n1, url: "${node.url}"}]`, 'health: {enabled: false}', `coalesce: {enabled: ${enabled}}`].join('\n');
    writeFileSync(file, yaml(true));
    const { app, adminUrl, proxyUrl } = await startFromFile(file);
    t.after(() => app.close(0));
    writeFileSync(file, yaml(false));
    const reloaded = JSON.parse((await send(`${adminUrl}/-/reload`, { method: 'POST' })).body.toString()) as { applied: string[] };
    assert.deepEqual(reloaded.applied, ['coalesce.enabled']);
    const lb = { url: proxyUrl } as StartedApp;
    const pulls = Array.from({ length: 3 }, () => pull(lb, 'Bearer good'));
    while (node.counts.get < 3) await new Promise((r) => setImmediate(r));
    node.release();
    for (const p of await Promise.all(pulls)) assert.equal(p.sha, DIGEST);
    assert.deepEqual([node.counts.get, node.counts.head], [3, 0]);
  });

  it('off by default: the same pulls each read from the node', async (t) => {
    const node = await blobNode(t);
    const lb = await startApp([node.url]);
    t.after(() => lb.close());
    const pulls = Array.from({ length: 3 }, () => pull(lb, 'Bearer good'));
    while (node.counts.get < 3) await new Promise((r) => setImmediate(r));
    node.release();
    for (const p of await Promise.all(pulls)) assert.equal(p.sha, DIGEST);
    assert.equal(node.counts.get, 3);
    assert.equal(node.counts.head, 0);
  });
});
