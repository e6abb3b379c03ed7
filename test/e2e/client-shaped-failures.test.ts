import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import type { ConfigInput } from '../../src/config/schema.js';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import type { NginxTimeouts } from '../support/nginx.js';
import { parseExposition } from '../support/prometheus-text.js';
import { startNginxFrontedCluster, type NginxFrontedCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const REPO = 'library/client-shaped';
const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
const NODES = ['n1', 'n2', 'n3'];
/** Short client-facing nginx timeouts (Harbor: nginx's 60 s), so nginx gives up on a stalled client within the test. */
const GIVES_UP_FAST: NginxTimeouts = { sendTimeout: '2s', clientBodyTimeout: '2s' };

interface Setup {
  fc: NginxFrontedCluster;
  lb: StartedApp;
  /** A pull and push token for REPO. */
  bearer: string;
  /** Run first in teardown (SIGCONT a stopped registry before anything is closed). */
  beforeClose: Array<() => void>;
}

/**
 * Three real nodes (docker-registry 2.8 behind the simulated core, each behind its own nginx set
 * up as Harbor's) and harbor-lb in front of the nginx ports, all stopped after the test. The random source is fixed at 0: the
 * power-of-two choice then draws n1 and n2 and keeps the less loaded, so requests sent one after
 * another all go to n1, as one client's failures in a row did when the old code counted 3 of them.
 */
async function setup(t: TestContext, timeouts: NginxTimeouts, overrides: Partial<ConfigInput>): Promise<Setup> {
  const tmp = makeTempDir('e2e-client-shaped');
  const beforeClose: Array<() => void> = [];
  let fc: NginxFrontedCluster | undefined;
  let lb: StartedApp | undefined;
  t.after(async () => {
    for (const f of beforeClose) f();
    await lb?.close();
    await fc?.close();
    tmp.remove();
  });
  fc = await startNginxFrontedCluster(tmp.dir, 3, timeouts);
  t.diagnostic(`nginx answered readiness after ${fc.fronts.map((f) => f.readyAttempts).join(', ')} attempt(s)`);
  lb = await startApp(fc.urls, overrides, { random: () => 0 });
  for (const name of NODES) await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === name && l.to === 'healthy', 10_000, `${name} healthy`);
  const scope = encodeURIComponent(`repository:${REPO}:pull,push`);
  const token = await send(`${lb.url}/service/token?service=harbor-registry&scope=${scope}`, { headers: { authorization: BASIC } });
  assert.equal(token.status, 200, token.body.toString());
  return { fc, lb, bearer: `Bearer ${(JSON.parse(token.body.toString()) as { token: string }).token}`, beforeClose };
}

/** A fresh upload through harbor-lb: its Location, as a path and query on harbor-lb. */
async function startUpload(s: Setup): Promise<string> {
  const post = await send(`${s.lb.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization: s.bearer } });
  assert.equal(post.status, 202, post.body.toString());
  const loc = new URL(String(post.headers.location), s.lb.url);
  return `${loc.pathname}${loc.search}`;
}

/** Pushes `size` random bytes as a blob of REPO through harbor-lb (POST, then one monolithic PUT); returns its digest. */
async function pushBlob(s: Setup, size: number): Promise<{ digest: string; size: number }> {
  const blob = randomBytes(size);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const at = await startUpload(s);
  const put = await send(`${s.lb.url}${at}&digest=${digest}`, {
    method: 'PUT',
    headers: { authorization: s.bearer, 'content-type': 'application/octet-stream', 'content-length': size },
    body: blob,
  });
  assert.equal(put.status, 201, put.body.toString());
  return { digest, size };
}

interface Pulled {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Whether the body ended as announced (false: the connection was cut). */
  complete: boolean;
}

/**
 * A blob GET with node:http that reads to the end or to the cut. With `stall`, the client reads
 * nothing of the body (its socket is no longer read once node:http holds 16 KiB, so the buffers on
 * the way fill up) until `stall` resolves.
 */
function pull(s: Setup, digest: string, opts: { range?: string; stall?: () => Promise<unknown> } = {}): Promise<Pulled> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { authorization: s.bearer };
    if (opts.range !== undefined) headers.range = opts.range;
    const req = http.request(`${s.lb.url}/v2/${REPO}/blobs/${digest}`, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      if (opts.stall !== undefined) {
        // Not a byte read: the client's receive window never grows, so less of the blob fits in the sockets.
        res.pause();
        opts.stall().then(() => res.resume(), reject);
      }
      res.on('error', () => undefined); // a cut: 'close' says so through `complete`
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Clients harbor-lb refused, all reasons together, as /metrics counts them. */
async function clientRejections(lb: StartedApp): Promise<number> {
  const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
  return (families.find((f) => f.name === 'harbor_lb_client_rejections')?.samples ?? []).reduce((sum, x) => sum + x.value, 0);
}

/**
 * Everything harbor-lb held against the nodes: ejections (`node_state` to unhealthy, and who is
 * ejected now), flags, suspicions (`node_suspected`, failures counted towards a check) and the
 * node's cut taken for the client's connection error (`connection_rejected`, client rejections
 * in /metrics). One object, so a failure shows all of it at once.
 */
async function heldAgainstNodes(lb: StartedApp) {
  const lines = lb.logs.lines;
  return {
    takenOut: lines.filter((l) => l.event === 'node_state' && l.to === 'unhealthy').map((l) => `${String(l.node)}: ${String(l.why)}`),
    ejectedNow: lb.app.nodes.all.filter((n) => lb.app.nodes.isEjected(n)).map((n) => n.name),
    flags: lines.filter((l) => l.event === 'node_flag' && l.raised === true).map((l) => `${String(l.node)}: ${String(l.code)}`),
    suspected: lines.filter((l) => l.event === 'node_suspected').map((l) => `${String(l.node)}: ${String(l.cause)} cleared=${String(l.cleared)}`),
    failuresCounted: lb.app.nodes.all.reduce((sum, n) => sum + lb.app.outliers.consecutiveFailures(n), 0),
    connectionRejected: lines.filter((l) => l.event === 'connection_rejected').map((l) => String(l.reason)),
    clientRejections: await clientRejections(lb),
  };
}

/**
 * What a client shaped never counts, not even as suspicion: so harbor-lb has nothing to check
 * (no `node_suspected` line, cleared or not), and nothing else either.
 */
const NOTHING_HELD: Awaited<ReturnType<typeof heldAgainstNodes>> = {
  takenOut: [],
  ejectedNow: [],
  flags: [],
  suspected: [],
  failuresCounted: 0,
  connectionRejected: [],
  clientRejections: 0,
};

/*
 * Issue 18, against real parts: each node is docker-registry 2.8 behind the simulated Harbor core
 * behind an nginx set up as Harbor's, and it is that nginx that gives up on a stalled client and
 * that passes on the registry's cut. What a client shaped must cost nothing to the node (first
 * describe); a node that really fails must still leave at once (second).
 */
describe('real Harbor nodes behind their nginx: what a client shaped never counts against a node (issue 18)', () => {
  it('a blob GET with a Range past the end, 10 times: the client gets the 416, no node is held to it', async (t) => {
    const s = await setup(t, GIVES_UP_FAST, { health: { enabled: true, interval: '1s' } });
    const blob = await pushBlob(s, 100_000);
    // What distribution 2.8.2 answers (seen with a raw socket, directly and through nginx and core):
    // "416 Requested Range Not Satisfiable" with "Content-Range: bytes */100000" but
    // "Content-Length: 100000", the blob's length, then a 33-byte body "invalid range: failed to
    // overlap\n", and it closes the connection. Every hop after it sees a response cut short.
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await pull(s, blob.digest, { range: `bytes=${blob.size + 10}-` });
      answers.push(`${a.status} ${String(a.headers['content-range'])} ${JSON.stringify(a.body.toString())} ${a.complete ? 'complete' : 'cut'}`);
    }
    const lines = (await s.lb.logs.waitForRequests(13)).slice(3);
    t.diagnostic(`routing line of a 416: error ${String(lines[0]!.error)}, ${String(lines[0]!.bytesOut)} bytes out`);
    assert.deepEqual(
      {
        answers,
        // One node took all ten, as the old code needed three in a row on one node.
        nodes: lines.map((l) => `${String(l.node)} ${String(l.status)}`),
        nginx416: s.fc.fronts[0]!.accessLog().filter((l) => / 416 /.test(l)).length,
        held: await heldAgainstNodes(s.lb),
      },
      {
        answers: Array<string>(10).fill(`416 bytes */${blob.size} "invalid range: failed to overlap\\n" cut`),
        nodes: Array<string>(10).fill('n1 416'),
        nginx416: 10,
        held: NOTHING_HELD,
      },
    );
  });

  it('a client that stops reading a pull until the node nginx gives up (send_timeout 2s), 3 times: CLIENT_TOO_SLOW, no node is held to it', async (t) => {
    // harbor-lb's own minimum body rate must not cut the slow reader before nginx does.
    const s = await setup(t, GIVES_UP_FAST, { health: { enabled: true, interval: '1s' }, limits: { minBodyRate: 0 } });
    // Big enough that the sockets on the way cannot hold it all, so nginx's writes block and its
    // send_timeout runs: the kernel grows their buffers (nginx's and harbor-lb's send buffers to 4
    // MB, the client's receive buffer to several), 8-19 MB were in flight when nginx gave up here.
    const blob = await pushBlob(s, 64 * 1024 * 1024);
    const gaveUp = /client timed out .* while sending to client/;
    const pulls: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const started = performance.now();
      // The client reads again once n1's nginx has logged that it gave up on it: no guessed pause.
      const got = await pull(s, blob.digest, { stall: () => s.fc.fronts[0]!.waitForLog(gaveUp, 15_000, i) });
      assert.ok(got.body.length < blob.size, `only part of the blob came through: ${got.body.length} of ${blob.size}`);
      pulls.push(`${got.status} ${got.complete ? 'complete' : 'cut'}`);
      t.diagnostic(`pull ${i}: ${got.body.length} of ${blob.size} bytes, cut ${Math.round(performance.now() - started)} ms after it started`);
    }
    const lines = (await s.lb.logs.waitForRequests(6)).slice(3);
    assert.deepEqual(
      {
        pulls,
        lines: lines.map((l) => `${String(l.node)} ${String(l.status)} ${String(l.error)}`),
        nginxGaveUp: s.fc.fronts[0]!.logLines(gaveUp).length,
        held: await heldAgainstNodes(s.lb),
      },
      {
        pulls: Array<string>(3).fill('200 cut'),
        lines: Array<string>(3).fill('n1 200 CLIENT_TOO_SLOW: response body (the node gave up)'),
        nginxGaveUp: 3,
        held: NOTHING_HELD,
      },
    );
  });

  it('3 uploads that pause mid-body until the node nginx gives up (client_body_timeout 2s): 408 CLIENT_TOO_SLOW, no node is held to it', async (t) => {
    const s = await setup(t, GIVES_UP_FAST, { health: { enabled: true, interval: '1s' }, limits: { minBodyRate: 0 } });
    const declared = 4 * 1024 * 1024;
    const uploads: string[] = [];
    for (let i = 0; i < 3; i++) uploads.push(await startUpload(s));
    // Three clients at once, as when several pushes stall together: with nothing answered well in
    // between, the old code's three failures in a row took the node out.
    const started = performance.now();
    const answers = await Promise.all(
      uploads.map(async (at) => {
        // A PATCH announcing 4 MiB that sends 1 MiB and then nothing: the answer is all it waits for.
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(
            `${s.lb.url}${at}`,
            { method: 'PATCH', agent: false, headers: { authorization: s.bearer, 'content-type': 'application/octet-stream', 'content-length': declared } },
            (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          );
          req.on('error', reject);
          req.write(randomBytes(1024 * 1024));
        });
        let code: string | undefined;
        try {
          code = (JSON.parse(answer.body) as { errors: Array<{ code: string }> }).errors[0]?.code;
        } catch {
          code = `not registry JSON: ${answer.body}`;
        }
        return `${answer.status} ${String(code)}`;
      }),
    );
    t.diagnostic(`3 PATCHes answered ${answers.join(', ')} within ${Math.round(performance.now() - started)} ms`);
    // Routing lines: the token, 3 POSTs, 3 PATCHes.
    const patches = (await s.lb.logs.waitForRequests(7)).filter((l) => l.method === 'PATCH');
    assert.deepEqual(
      {
        answers,
        lines: patches.map((l) => `${String(l.node)} ${String(l.status)} ${String(l.error)} ${String(l.bytesIn)}`),
        // nginx gave up itself: it logs its 408 (it sends none, it closes the connection).
        nginx408: s.fc.fronts[0]!.accessLog().filter((l) => /"PATCH [^"]*" 408 /.test(l)).length,
        held: await heldAgainstNodes(s.lb),
      },
      {
        answers: Array<string>(3).fill('408 TIMEOUT'),
        lines: Array<string>(3).fill(`n1 408 CLIENT_TOO_SLOW: request body (the node gave up) ${1024 * 1024}`),
        nginx408: 3,
        held: NOTHING_HELD,
      },
    );
  });
});

describe('real Harbor nodes behind their nginx: a node that really fails still leaves at once', () => {
  // Periodic checks far apart: only the checks that failed requests ask for can act within the test.
  const traffic = { health: { enabled: true, interval: '1h', timeout: '1s' }, proxy: { headersTimeout: '1s' } } satisfies Partial<ConfigInput>;

  it('a hung registry (SIGSTOP): out within 2 s of the first failed request, every pull still served', async (t) => {
    // Harbor's own nginx timeouts: nginx waits on the hung node far longer than harbor-lb does.
    const s = await setup(t, {}, traffic);
    const blob = await pushBlob(s, 1024 * 1024);
    const registry = s.fc.cluster.registries[0]!.process;
    registry.kill('SIGSTOP');
    s.beforeClose.push(() => registry.kill('SIGCONT'));
    const stoppedAt = performance.timeOrigin + performance.now();
    const out = s.lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy', 10_000, 'n1 taken out');
    let taken: Record<string, unknown> | undefined;
    void out.then((l) => (taken = l), () => undefined);
    // Pulls one after another until n1 is out (bounded): each one that reached n1 is retried elsewhere.
    const pulls: Pulled[] = [];
    for (let i = 0; i < 10 && taken === undefined; i++) pulls.push(await pull(s, blob.digest));
    const down = await out;
    for (const p of pulls) {
      assert.equal(p.status, 200);
      assert.equal(p.body.length, blob.size, 'the whole blob');
    }
    const firstFailed = s.lb.logs.requests().find((l) => l.reason === 'retried' && Date.parse(String(l.time)) >= stoppedAt);
    assert.ok(firstFailed, 'a pull failed on n1 and was retried');
    const afterFailure = Date.parse(String(down.time)) - Date.parse(String(firstFailed.time));
    const afterStop = Date.parse(String(down.time)) - stoppedAt;
    t.diagnostic(
      `n1 out ${afterFailure} ms after the first failed pull's routing line (that pull took ${String(firstFailed.durationMs)} ms, retried on ${String(firstFailed.node)}), ` +
        `${Math.round(afterStop)} ms after SIGSTOP; ${pulls.length} pull(s), all 200: ${String(down.why)}`,
    );
    assert.match(String(down.why), /check then failed/, "harbor-lb's own check convicted it");
    assert.ok(afterFailure < 2000, `out ${afterFailure} ms after the first failed request`);
    assert.equal(s.lb.app.nodes.isEjected(s.lb.app.nodes.get('n1')!), true);
  });

  it('a dead node (registry SIGKILLed, core closed, its nginx answering 502): 20 pulls all get the whole blob', async (t) => {
    const s = await setup(t, {}, traffic);
    const blob = await pushBlob(s, 1024 * 1024);
    await s.fc.cluster.kill(0);
    const got: string[] = [];
    for (let i = 0; i < 20; i++) {
      const p = await pull(s, blob.digest);
      got.push(p.status === 200 && p.body.length === blob.size && p.complete ? 'ok' : `${p.status}/${p.body.length}`);
    }
    assert.deepEqual(got, Array<string>(20).fill('ok'), 'every pull got the whole blob');
    const down = await s.lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'unhealthy', 10_000, 'n1 taken out');
    const retried = s.lb.logs.requests().filter((l) => l.reason === 'retried').length;
    t.diagnostic(`n1 out: ${String(down.why)}; ${retried} pull(s) retried on another node`);
  });
});
