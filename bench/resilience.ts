/**
 * Resilience measurements for issue 9 ("never worse than DNS round robin"): the six cases of the
 * issue (S1-S6), and issue 10's trickle attack (S7), each run against a harbor-lb build and reported as numbers (client-visible
 * failures, nodes taken out, time to recover), plus two variants that show failure modes the main
 * shape hides on older builds (S1b: the pulls of a hiccup back to back; S3b: a token under 64 KiB
 * of response). Loopback only, ports 0, every scenario bounded (≤ 60 s, most ≤ 16 s) and
 * everything it starts stopped at its end; S5 runs `cli.js serve` as a child process.
 *
 * The app is imported from the build named on the command line, so one copy of this script
 * measures any build, before or after a fix (configs use only keys every build accepts):
 *
 *   npx tsc -p . --outDir /tmp/new-dist                       # this script is compiled with it
 *   ln -sfn "$PWD/node_modules" /tmp/new-dist/node_modules     # the build resolves its packages
 *   echo '{"type":"module"}' > /tmp/new-dist/package.json
 *   node /tmp/new-dist/bench/resilience.js --build /tmp/new-dist [--only S1,S4]
 *   node /tmp/new-dist/bench/resilience.js --build /tmp/old-dist     # an older build, prepared the same way
 *
 * Simulated Harbor nodes (S3, S4) come from --sim-build, by default the build this script was
 * compiled with: older SimulatedHarborNodes refuse the ~50 KB heads of S3 (node:http's 16 KiB
 * default), and the nodes are the fixture, not what is measured.
 *
 * Output: one JSON line per scenario, then a Markdown table.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { App } from '../src/app.js';
import type { ConfigInput } from '../src/config/schema.js';
import { makeTokenKeyPair, type TokenKeyPair } from '../test/support/pki.js';

// ---- the build under test ------------------------------------------------------------------------

interface Build {
  dir: string;
  createApp: typeof import('../src/app.js').createApp;
  validateConfig: typeof import('../src/config/load.js').validateConfig;
  /** From --sim-build: the fixture nodes of S3 and S4. */
  SimulatedHarborNode: typeof import('../src/demo/harbor-node.js').SimulatedHarborNode;
  cli: string;
}

async function loadBuild(dir: string, simDir: string): Promise<Build> {
  const from = (file: string) => import(pathToFileURL(join(dir, file)).href);
  const app = (await from('src/app.js')) as typeof import('../src/app.js');
  const load = (await from('src/config/load.js')) as typeof import('../src/config/load.js');
  const sim = (await import(pathToFileURL(join(simDir, 'src/demo/harbor-node.js')).href)) as typeof import('../src/demo/harbor-node.js');
  return { dir, createApp: app.createApp, validateConfig: load.validateConfig, SimulatedHarborNode: sim.SimulatedHarborNode, cli: join(dir, 'src/cli.js') };
}

// ---- scenario plumbing -----------------------------------------------------------------------------

/** What a scenario hands back: a one-line summary for the table and the raw numbers for the JSON line. */
interface Outcome {
  summary: string;
  data: Record<string, unknown>;
}

/** Cleanups registered while a scenario runs; run in reverse order when it ends, however it ends. */
class Scope {
  readonly #cleanups: Array<() => unknown> = [];
  defer(fn: () => unknown): void {
    this.#cleanups.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.#cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the next cleanup still runs
      }
    }
  }
}

type Scenario = { id: string; title: string; run: (b: Build, scope: Scope) => Promise<Outcome> };

const SCENARIO_BUDGET_MS = 60_000;

const now = () => performance.now();
const ms = (t0: number) => Math.round(now() - t0);

async function waitUntil(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const t0 = now();
  while (!cond()) {
    if (now() - t0 > timeoutMs) return false;
    await sleep(stepMs);
  }
  return true;
}

/** Runs `fn` every `periodMs` (start to start, never overlapping) for `durationMs`, or until it returns true. */
async function every(periodMs: number, durationMs: number, fn: (elapsed: number) => Promise<boolean | void>): Promise<void> {
  const t0 = now();
  while (now() - t0 < durationMs) {
    const start = now();
    if ((await fn(Math.round(start - t0))) === true) return;
    await sleep(Math.max(0, periodMs - (now() - start)));
  }
}

const count = <T>(xs: readonly T[], pred: (x: T) => boolean) => xs.filter(pred).length;
const histogram = (xs: readonly (number | string)[]) => Object.fromEntries([...new Set(xs)].map((v) => [String(v), count(xs, (x) => x === v)]));

// ---- HTTP on loopback ------------------------------------------------------------------------------

interface Answer {
  /** 0 when no HTTP answer came (refused, reset, timed out). */
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  error?: string;
}

/** One request on a connection of its own (no pooling, so nothing carries over between requests). */
function send(url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; localAddress?: string; timeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((done) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => done({ status: 0, headers: {}, body: '', error: err.message }));
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => done({ status: 0, headers: {}, body: '', error: err.code ?? err.message }));
    req.end();
  });
}

/** Writes a request head as given (for heads node:http's client refuses to build) and reads the status line. */
function sendRaw(port: number, head: string, localAddress?: string, timeoutMs = 5_000): Promise<{ status: number; error?: string }> {
  return new Promise((done) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    const finish = (r: { status: number; error?: string }) => {
      socket.destroy();
      done(r);
    };
    socket.setTimeout(timeoutMs, () => finish({ status: 0, error: 'timed out' }));
    socket.on('connect', () => socket.write(head));
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (m && text.includes('\r\n\r\n')) finish({ status: Number(m[1]) });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ status: 0, error: err.code ?? err.message }));
    socket.on('close', () => finish({ status: 0, error: 'closed without an answer' }));
  });
}

// ---- fixtures: plain Harbor-shaped nodes and harbor-lb -------------------------------------------------

const HEALTHY = JSON.stringify({
  status: 'healthy',
  components: ['core', 'database', 'jobservice', 'portal', 'redis', 'registry', 'registryctl'].map((name) => ({ name, status: 'healthy' })),
});

/**
 * A node with the shape of Harbor that matters here: `/v2/*` (registry, on shared storage),
 * `/service/token` and `/` (core and portal, no storage), and a health document that always says
 * healthy (a storage hiccup does not show in it). Every answer names the node in `x-node`.
 */
class PlainNode {
  /** While set, `/v2/*` answers 503 as a registry whose storage is gone does. */
  storageDown = false;
  /** Arrival times (performance.now()) of every request but health checks. */
  readonly hits: number[] = [];
  readonly #server: http.Server;
  port = 0;

  constructor(readonly name: string) {
    this.#server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      res.setHeader('x-node', this.name);
      if (path === '/api/v2.0/health') return json(res, 200, HEALTHY);
      this.hits.push(now());
      if ((req.method === 'PATCH' || req.method === 'PUT') && path.includes('/blobs/uploads/')) {
        // A registry answers an upload once it has the whole body.
        req.on('data', () => {});
        req.on('end', () => json(res, 202, '{}'));
        return;
      }
      if (path === '/v2' || path.startsWith('/v2/')) {
        if (this.storageDown) return json(res, 503, JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'storage unavailable', detail: null }] }));
        return json(res, 200, '{}');
      }
      if (path === '/service/token') return json(res, 200, JSON.stringify({ token: 'opaque', expires_in: 1800 }));
      if (path === '/' || path.startsWith('/harbor')) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return void res.end(`<!doctype html><title>Harbor</title><p>${this.name}</p>`);
      }
      return json(res, 404, JSON.stringify({ errors: [{ code: 'NOT_FOUND', message: 'not found', detail: null }] }));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    await new Promise<void>((ok, fail) => {
      this.#server.once('error', fail);
      this.#server.listen(port, '127.0.0.1', () => ok());
    });
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  /** Stops listening and cuts open connections: new connections are refused. */
  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    this.#server.closeAllConnections();
    return new Promise((ok) => this.#server.close(() => ok()));
  }
}

function json(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function plainNodes(scope: Scope, n: number): Promise<PlainNode[]> {
  const nodes = await Promise.all(Array.from({ length: n }, (_, i) => new PlainNode(`n${i + 1}`).start()));
  scope.defer(() => Promise.all(nodes.map((x) => x.close())));
  return nodes;
}

const OUT = new Set(['unhealthy', 'quarantined']);

interface Transition {
  at: number;
  node: string;
  from: string;
  to: string;
  why: string;
}

/** A harbor-lb in this process, with what it did recorded: state changes and log lines. */
class Lb {
  /** Every node state change, in order. */
  readonly transitions: Transition[] = [];
  /** Parsed log lines (events and routing lines). */
  readonly log: Array<Record<string, unknown>> = [];
  /** The most nodes out (unhealthy or quarantined) at once since `resetPeak()`. */
  peakOut = 0;
  url = '';
  port = 0;
  adminUrl = '';
  readonly app: App;

  constructor(b: Build, nodeUrls: string[], overrides: Partial<ConfigInput>) {
    const config = b.validateConfig({
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      nodes: nodeUrls.map((url, i) => ({ name: `n${i + 1}`, url })),
      log: { level: 'info' },
      ...overrides,
    });
    const destination = {
      write: (text: string) => {
        for (const line of text.split('\n')) if (line !== '') this.log.push(JSON.parse(line) as Record<string, unknown>);
      },
    };
    this.app = b.createApp(config, { logDestination: destination });
    this.app.nodes.on('state', ({ node, from, to, why }) => {
      this.transitions.push({ at: now(), node: node.name, from, to, why });
      this.peakOut = Math.max(this.peakOut, this.#out());
    });
  }

  async start(): Promise<this> {
    const urls = await this.app.start();
    [this.url, this.port, this.adminUrl] = [urls.proxyUrl, urls.proxyPort, urls.adminUrl];
    return this;
  }

  state(name: string): string {
    return this.app.nodes.get(name)?.state ?? 'none';
  }

  /** Nodes that went to state `to` at or after `since`. */
  wentTo(to: string, since: number): string[] {
    return [...new Set(this.transitions.filter((t) => t.to === to && t.at >= since).map((t) => t.node))];
  }

  resetPeak(): void {
    this.peakOut = this.#out();
  }

  /** How often each logged event occurred (routing lines left out). */
  events(): Record<string, number> {
    return histogram(this.log.map((l) => l.event).filter((e): e is string => typeof e === 'string' && e !== 'request'));
  }

  /** The routing lines of requests harbor-lb failed, grouped: what the client saw and why. */
  failures(): Record<string, number> {
    const failed = this.log.filter((l) => l.event === 'request' && typeof l.status === 'number' && l.status >= 500);
    return histogram(failed.map((l) => `${String(l.status)} ${String(l.error ?? 'node answer')}`));
  }

  #out(): number {
    return count(this.app.nodes.all, (n) => OUT.has(n.state));
  }
}

/** A harbor-lb on loopback ports 0, its log kept in memory, closed with the scope. */
async function startLb(b: Build, scope: Scope, nodeUrls: string[], overrides: Partial<ConfigInput> = {}): Promise<Lb> {
  const lb = new Lb(b, nodeUrls, overrides);
  await lb.start();
  scope.defer(() => lb.app.close(0));
  return lb;
}

async function allHealthy(lb: Lb, timeoutMs = 15_000): Promise<void> {
  if (!(await waitUntil(() => lb.app.nodes.all.every((n) => n.state === 'healthy'), timeoutMs))) {
    throw new Error(`nodes not healthy after ${timeoutMs} ms: ${lb.app.nodes.all.map((n) => `${n.name}=${n.state}`).join(', ')}`);
  }
}

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

// ---- S1: storage hiccup ----------------------------------------------------------------------------------

/**
 * Every node answers 503 on /v2/ while the storage is down; token and UI need no storage.
 * `interleaved`: each pull is followed by a token and a UI request from the same client (one
 * user pulling, logging in and browsing). Their successes on the client's pinned node reset that node's
 * run of failures, which hides part of what a pull-only burst does; so the burst variant sends the
 * 30 pulls back to back first (as the issue measured), then 10 token and 10 UI requests, storage still down.
 */
async function storageHiccup(b: Build, scope: Scope, interleaved: boolean): Promise<Outcome> {
  const nodes = await plainNodes(scope, 3);
  const lb = await startLb(b, scope, nodes.map((n) => n.url), { health: { interval: '1s' } });
  await allHealthy(lb);

  const hiccupStart = now();
  lb.resetPeak();
  for (const n of nodes) n.storageDown = true;
  const pulls: Answer[] = [];
  const tokens: Answer[] = [];
  const ui: Answer[] = [];
  const tokenAndUi = async () => {
    tokens.push(await send(`${lb.url}/service/token?service=harbor-registry`));
    ui.push(await send(`${lb.url}/`));
  };
  for (let i = 0; i < 30; i++) {
    pulls.push(await send(`${lb.url}/v2/x/manifests/1`));
    if (interleaved) await tokenAndUi();
  }
  if (!interleaved) for (let i = 0; i < 10; i++) await tokenAndUi();
  const hiccupMs = ms(hiccupStart);
  const ejectedDuringHiccup = lb.wentTo('unhealthy', hiccupStart);
  const peakOutDuringHiccup = lb.peakOut;

  for (const n of nodes) n.storageDown = false;
  const recovered = now();
  lb.resetPeak();
  const after: Array<{ at: number; status: number }> = [];
  await every(100, 15_000, async (at) => {
    after.push({ at, status: (await send(`${lb.url}/v2/x/manifests/1`)).status });
  });
  const firstOk = after.find((a) => a.status === 200);
  const failedAfter = count(after, (a) => a.status !== 200);
  const failedBeforeFirstOk = firstOk ? count(after, (a) => a.at < firstOk.at) : after.length;
  // A 503 with x-node was the node's, passed on; without it harbor-lb refused on its own ("no Harbor node is available").
  const passedOn = count(pulls, (a) => a.status === 503 && a.headers['x-node'] !== undefined);
  const ownRefusals = count(pulls, (a) => a.status !== 200 && a.headers['x-node'] === undefined);
  const tokenFailed = count(tokens, (a) => a.status !== 200);
  const uiFailed = count(ui, (a) => a.status !== 200);
  const ejected = [...new Set([...ejectedDuringHiccup, ...lb.wentTo('unhealthy', recovered)])];
  return {
    summary:
      `hiccup: token failed ${tokenFailed}/${tokens.length}, UI failed ${uiFailed}/${ui.length}, pulls ${passedOn}/30 node 503 passed on + ${ownRefusals}/30 refused by harbor-lb; ` +
      `nodes ejected ${ejected.length}/3 (at once ≤${peakOutDuringHiccup}); after recovery: first 200 after ${firstOk ? `${firstOk.at} ms` : '>15 s'}, ` +
      `${failedBeforeFirstOk} pulls failed before it, ${failedAfter}/${after.length} failed in 15 s`,
    data: {
      hiccupMs,
      tokenFailed,
      uiFailed,
      tokenStatuses: histogram(tokens.map((a) => a.status)),
      uiStatuses: histogram(ui.map((a) => a.status)),
      pullStatuses: histogram(pulls.map((a) => a.status)),
      pullsPassedOn: passedOn,
      pullsRefusedByLb: ownRefusals,
      nodesEjected: ejected,
      peakOutDuringHiccup,
      firstOkAfterRecoveryMs: firstOk?.at ?? null,
      failedPullsBeforeFirstOk: failedBeforeFirstOk,
      failedPullsIn15s: failedAfter,
      pullsAfterRecovery: after.length,
      afterStatuses: histogram(after.map((a) => a.status)),
      events: lb.events(),
      lbFailures: lb.failures(),
    },
  };
}

// ---- S2: duplicate Host ----------------------------------------------------------------------------------

async function duplicateHost(b: Build, scope: Scope): Promise<Outcome> {
  const nodes = await plainNodes(scope, 3);
  const lb = await startLb(b, scope, nodes.map((n) => n.url));
  await allHealthy(lb);
  const t0 = now();
  lb.resetPeak();
  const bad = 'GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n';
  const hostile: Array<{ status: number; error?: string }> = [];
  const normal: Answer[] = [];
  // Two clients: the hostile one from 127.0.0.2, everyone else from 127.0.0.1 (client affinity tells them apart).
  await Promise.all([
    every(1_000, 10_000, async () => {
      hostile.push(...(await Promise.all([0, 1, 2].map(() => sendRaw(lb.port, bad, '127.0.0.2')))));
    }),
    every(250, 10_000, async () => {
      normal.push(await send(`${lb.url}/v2/`, { localAddress: '127.0.0.1' }));
    }),
  ]);
  const normalFailed = count(normal, (a) => a.status !== 200);
  const ejected = lb.wentTo('unhealthy', t0);
  return {
    summary: `normal client failed ${normalFailed}/${normal.length}; hostile answered ${JSON.stringify(histogram(hostile.map((h) => h.status)))}; nodes ejected ${ejected.length}/3 (at once ≤${lb.peakOut})`,
    data: {
      normalFailed,
      normalTotal: normal.length,
      normalStatuses: histogram(normal.map((a) => a.status)),
      hostileStatuses: histogram(hostile.map((h) => h.status)),
      nodesEjected: ejected,
      peakOut: lb.peakOut,
      nodeFailures: Object.fromEntries(lb.app.nodes.all.map((n) => [n.name, n.traffic.failures])),
      events: lb.events(),
      lbFailures: lb.failures(),
    },
  };
}

// ---- S3 and S4: simulated Harbor nodes with token keys ---------------------------------------------------------

function keyDir(scope: Scope): string {
  const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-resilience-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type SimNode = InstanceType<Build['SimulatedHarborNode']>;

async function simNode(b: Build, scope: Scope, name: string, pair: TokenKeyPair, port = 0): Promise<SimNode> {
  // realm 'request': the token realm follows the Host asked for, as Harbor 2.x does (no REALM_BYPASSES_PROXY flag).
  const node = await new b.SimulatedHarborNode({ name, signingKey: pair.key, registryTrusts: [pair.key], realm: 'request', port }).start();
  scope.defer(() => node.close());
  return node;
}

/**
 * An authenticated user asks for a token of many scopes (`scopes` repositories, ~270 B of token
 * each): 190 makes a ~50 KB token in a ~100 KB response (the sim node sends it as token and
 * access_token); 100 a ~27 KB token in a response under 64 KiB.
 */
async function bigToken(b: Build, scope: Scope, scopes: number): Promise<Outcome> {
  const cluster = makeTokenKeyPair(keyDir(scope), 'cluster');
  const nodes = [await simNode(b, scope, 'h1', cluster), await simNode(b, scope, 'h2', cluster), await simNode(b, scope, 'h3', cluster)];
  // Round robin without client affinity, so the big tokens come from every node.
  const lb = await startLb(b, scope, nodes.map((n) => n.url), {
    token: { rootCert: cluster.certFile },
    balance: { policy: 'round-robin' },
    sticky: { keys: ['upload'] },
  });
  await allHealthy(lb);
  const t0 = now();
  const query = new URLSearchParams({ account: 'admin', service: 'harbor-registry' });
  for (let i = 0; i < scopes; i++) query.append('scope', `repository:library/project-${i}-${'x'.repeat(120)}:pull,push`);
  const tokenAnswers: Array<{ status: number; node: string; tokenBytes: number }> = [];
  let token: string | undefined;
  for (let i = 0; i < 4; i++) {
    const a = await send(`${lb.url}/service/token?${query.toString()}`, { headers: { authorization: BASIC } });
    let bytes = 0;
    if (a.status === 200) {
      const t = (JSON.parse(a.body) as { token?: string }).token ?? '';
      bytes = t.length;
      token ??= t;
    }
    tokenAnswers.push({ status: a.status, node: String(a.headers['x-harbor-node'] ?? '-'), tokenBytes: bytes });
  }
  // The token at work: a registry request with it as the bearer, once per node.
  const uses: Answer[] = [];
  for (let i = 0; i < 3 && token; i++) uses.push(await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } }));
  await sleep(1_000);
  const flagged = lb.app.nodes.all.filter((n) => n.flags.size > 0).map((n) => `${n.name}:${[...n.flags.keys()].join('+')}`);
  const quarantined = lb.wentTo('quarantined', t0);
  const tokenFailed = count(tokenAnswers, (a) => a.status !== 200);
  const useFailed = count(uses, (a) => a.status !== 200);
  return {
    summary: `token requests failed ${tokenFailed}/4 (token ${tokenAnswers[0]?.tokenBytes ?? 0} B), registry requests with it failed ${useFailed}/${uses.length}; nodes flagged ${flagged.length}/3, quarantined ${quarantined.length}/3 (${count(lb.app.nodes.all, (n) => n.state === 'quarantined')} at the end)`,
    data: {
      tokenAnswers,
      tokenFailed,
      bearerUses: uses.map((a) => a.status),
      bearerUseFailed: useFailed,
      flagged,
      quarantined,
      states: Object.fromEntries(lb.app.nodes.all.map((n) => [n.name, n.state])),
      events: lb.events(),
      lbFailures: lb.failures(),
    },
  };
}

/** Docker's login and first registry request: a token for Basic credentials, then /v2/ with it as the bearer. */
async function roundTrip(lb: Lb): Promise<{ ok: boolean; token: number; v2: number; node: string }> {
  const scope = encodeURIComponent('repository:library/demo:pull,push');
  const t = await send(`${lb.url}/service/token?account=admin&service=harbor-registry&scope=${scope}`, { headers: { authorization: BASIC } });
  const node = String(t.headers['x-harbor-node'] ?? '-');
  if (t.status !== 200) return { ok: false, token: t.status, v2: 0, node };
  const token = (JSON.parse(t.body) as { token: string }).token;
  const v2 = await send(`${lb.url}/v2/`, { headers: { authorization: `Bearer ${token}` } });
  return { ok: v2.status === 200, token: t.status, v2: v2.status, node };
}

async function quarantineLockOut(b: Build, scope: Scope): Promise<Outcome> {
  const dir = keyDir(scope);
  const cluster = makeTokenKeyPair(dir, 'cluster');
  const foreign = makeTokenKeyPair(dir, 'foreign');
  const n1 = await simNode(b, scope, 'h1', cluster);
  const n2 = await simNode(b, scope, 'h2', cluster);
  // The seed's misconfigured node: a key pair of its own, self-consistent (it trusts the tokens it signs).
  const n3 = await simNode(b, scope, 'h3', foreign);
  const lb = await startLb(b, scope, [n1.url, n2.url, n3.url], {
    token: { rootCert: cluster.certFile, probe: { interval: '1s' } },
    health: { interval: '500ms' },
  });
  const t0 = now();
  if (!(await waitUntil(() => lb.state('n3') === 'quarantined', 20_000))) throw new Error(`n3 not quarantined in 20 s (${lb.state('n3')})`);
  const quarantinedAfterMs = ms(t0);

  // The two good nodes die: connections refused from now on.
  await Promise.all([n1.close(), n2.close()]);
  const down = now();
  const trips: Array<{ at: number; ok: boolean; token: number; v2: number; node: string }> = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1_000);
    const at = ms(down);
    trips.push({ at, ...(await roundTrip(lb)) });
  }
  const n3WhileAlone = lb.state('n3');

  // A good node comes back: the quarantine should be in force again.
  await simNode(b, scope, 'h1', cluster, n1.port);
  const returned = now();
  const neverLeft = !lb.transitions.some((t) => t.node === 'n3' && t.from === 'quarantined' && t.at >= down);
  const again = await waitUntil(() => lb.state('n3') === 'quarantined', 10_000);
  const ok = count(trips, (t) => t.ok);
  return {
    summary:
      `n3 quarantined after ${quarantinedAfterMs} ms; n1+n2 down: ${ok}/3 login+/v2/ round trips succeeded ` +
      `(token ${trips.map((t) => t.token).join(',')}; /v2/ ${trips.map((t) => t.v2 || '-').join(',')}); n3 ${n3WhileAlone} while alone; ` +
      (neverLeft ? 'n3 quarantined throughout' : `n1 back: n3 ${again ? `quarantined again after ${ms(returned)} ms` : `not quarantined again in 10 s (${lb.state('n3')})`}`),
    data: {
      quarantinedAfterMs,
      roundTrips: trips,
      succeeded: ok,
      n3StateWhileAlone: n3WhileAlone,
      n3NeverLeftQuarantine: neverLeft,
      requarantinedAfterReturnMs: !neverLeft && again ? ms(returned) : null,
      events: lb.events(),
      lbFailures: lb.failures(),
    },
  };
}

// ---- S5: malformed admin path ------------------------------------------------------------------------------------

async function adminUriError(b: Build, scope: Scope): Promise<Outcome> {
  const [node] = await plainNodes(scope, 1);
  const dir = keyDir(scope);
  const file = join(dir, 'harbor-lb.yaml');
  // JSON is YAML: the same document any build's `serve --config` reads.
  writeFileSync(
    file,
    JSON.stringify({
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      nodes: [{ name: 'n1', url: node!.url }],
      log: { level: 'info' },
    }),
  );
  const child = spawn(process.execPath, [b.cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exit: { code: number | null; signal: string | null } | undefined;
  const exited = new Promise<void>((ok) => child.on('exit', (code, signal) => ((exit = { code, signal }), ok())));
  scope.defer(async () => {
    if (exit) return;
    child.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) child.kill('SIGKILL');
    await exited;
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const adminUrl = () => {
    for (const line of stdout.split('\n')) {
      if (!line.includes('"listening"')) continue;
      return (JSON.parse(line) as { admin?: string }).admin;
    }
    return undefined;
  };
  if (!(await waitUntil(() => adminUrl() !== undefined || exit !== undefined, 10_000))) throw new Error(`harbor-lb did not start: ${stderr.slice(0, 300)}`);
  const admin = adminUrl();
  if (admin === undefined) throw new Error(`harbor-lb exited at start: ${stderr.slice(0, 300)}`);
  const before = await send(`${admin}/-/healthz`);
  const answer = await send(`${admin}/-/nodes/%E0/drain`, { method: 'POST' });
  await Promise.race([exited, sleep(1_500)]);
  const after = exit ? undefined : await send(`${admin}/-/healthz`);
  const crash = /^\S*Error[^\n]*/m.exec(stderr)?.[0];
  return {
    summary: exit
      ? `process exited (code ${exit.code}${exit.signal ? `, ${exit.signal}` : ''}) — ${crash ?? 'no error printed'}; the request got ${answer.status || answer.error}`
      : `answered ${answer.status}; process alive, /-/healthz ${after?.status}`,
    data: {
      healthzBefore: before.status,
      status: answer.status,
      error: answer.error ?? null,
      body: answer.body.slice(0, 200),
      exited: exit !== undefined,
      exitCode: exit?.code ?? null,
      signal: exit?.signal ?? null,
      healthzAfter: after?.status ?? null,
      stderr: crash ?? null,
    },
  };
}

// ---- S6: passive ejection with active checks off ----------------------------------------------------------------

async function ejectionWithoutChecks(b: Build, scope: Scope): Promise<Outcome> {
  const nodes = await plainNodes(scope, 2);
  const n2port = nodes[1]!.port;
  // Round robin without client affinity: a node back in rotation shows as traffic at once.
  const lb = await startLb(b, scope, nodes.map((n) => n.url), {
    health: { enabled: false, passive: { ejectFor: '2s' } },
    balance: { policy: 'round-robin' },
    sticky: { keys: ['upload'] },
  });
  await nodes[1]!.close();
  const killed = now();
  const untilEjected: Answer[] = [];
  let ejected = false;
  await every(100, 10_000, async () => {
    untilEjected.push(await send(`${lb.url}/v2/`));
    ejected = lb.state('n2') === 'unhealthy';
    return ejected;
  });
  const ejectedAfterMs = ejected ? ms(killed) : null;

  const back = await new PlainNode('n2').start(n2port);
  scope.defer(() => back.close());
  const restarted = now();
  const after: Answer[] = [];
  await every(100, 15_000, async () => {
    after.push(await send(`${lb.url}/v2/`));
  });
  const firstHit = back.hits[0];
  const servedByN2 = count(after, (a) => a.headers['x-node'] === 'n2');
  const backIn = lb.transitions.find((t) => t.node === 'n2' && t.at >= restarted && !OUT.has(t.to));
  return {
    summary: ejected
      ? `n2 ejected after ${ejectedAfterMs} ms (${count(untilEjected, (a) => a.status !== 200)}/${untilEjected.length} client requests failed meanwhile); restarted: ` +
        (firstHit !== undefined ? `traffic again after ${Math.round(firstHit - restarted)} ms, ${servedByN2}/${after.length} requests in 15 s` : `no traffic in 15 s (0/${after.length}), state ${lb.state('n2')}`)
      : `n2 never ejected in 10 s (${count(untilEjected, (a) => a.status !== 200)}/${untilEjected.length} failed)`,
    data: {
      ejectedAfterMs,
      failedUntilEjected: count(untilEjected, (a) => a.status !== 200),
      requestsUntilEjected: untilEjected.length,
      firstTrafficAfterRestartMs: firstHit !== undefined ? Math.round(firstHit - restarted) : null,
      backInStateAfterMs: backIn ? Math.round(backIn.at - restarted) : null,
      servedByN2In15s: servedByN2,
      requestsIn15s: after.length,
      failedIn15s: count(after, (a) => a.status !== 200),
      n2StateAtEnd: lb.state('n2'),
      events: lb.events(),
      lbFailures: lb.failures(),
    },
  };
}

// ---- S7: trickled uploads (issue 10) ------------------------------------------------------------------------------

/**
 * 130 connections from one address each start a 10 MB PATCH to a one-node cluster and send one
 * byte a second; another client pulls (GET /v2/) every 250 ms. Before issue 10 the uploads held every connection of the
 * node and the pulls got no answer; now uploads have their own budget, a client its own limits,
 * and a body under limits.minBodyRate is cut after its window.
 */
async function trickledUploads(b: Build, scope: Scope): Promise<Outcome> {
  // One node, as the issue measured: with several, upload ids spread the trickles over them.
  const nodes = await plainNodes(scope, 1);
  const lb = await startLb(b, scope, nodes.map((n) => n.url), { health: { enabled: false } });
  const TRICKLES = 130;
  const DURATION = 45_000;
  const trickles: Array<{ status: number; closedAt?: number; error?: string }> = [];
  const sockets: net.Socket[] = [];
  scope.defer(() => sockets.forEach((s) => s.destroy()));
  const t0 = now();
  for (let i = 0; i < TRICKLES; i++) {
    const t: { status: number; closedAt?: number; error?: string } = { status: 0 };
    trickles.push(t);
    const s = net.connect({ host: '127.0.0.1', port: lb.port, localAddress: '127.0.0.3' });
    sockets.push(s);
    let text = '';
    s.on('connect', () => s.write(`PATCH /v2/library/x/blobs/uploads/u${i} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\nx`));
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      t.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    });
    s.on('error', (err: NodeJS.ErrnoException) => (t.error = err.code ?? err.message));
    s.on('close', () => (t.closedAt ??= ms(t0)));
  }
  const drip = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write('x');
  }, 1000);
  scope.defer(() => clearInterval(drip));
  const pulls: Array<{ status: number; ms: number }> = [];
  await every(250, DURATION, async () => {
    const start = now();
    const a = await send(`${lb.url}/v2/`, { localAddress: '127.0.0.1', timeoutMs: 5_000 });
    pulls.push({ status: a.status, ms: ms(start) });
  });
  clearInterval(drip);
  const lat = pulls.map((p) => p.ms).sort((x, y) => x - y);
  const pct = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? 0;
  const failed = count(pulls, (p) => p.status !== 200);
  const byStatus = histogram(trickles.map((t) => t.status));
  const cutAt = trickles.filter((t) => t.status === 408 && t.closedAt !== undefined).map((t) => t.closedAt!);
  return {
    summary:
      `pulls failed ${failed}/${pulls.length} (p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${lat.at(-1) ?? 0} ms); ` +
      `uploads answered: ${Object.entries(byStatus).map(([k, v]) => `${v}×${k === '0' ? 'none' : k}`).join(', ')}` +
      (cutAt.length > 0 ? `; 408s between ${Math.min(...cutAt)} and ${Math.max(...cutAt)} ms` : ''),
    data: { pulls: pulls.length, failedPulls: failed, p50: pct(0.5), p99: pct(0.99), max: lat.at(-1) ?? 0, uploadAnswers: byStatus, cutFirstMs: cutAt.length ? Math.min(...cutAt) : null, cutLastMs: cutAt.length ? Math.max(...cutAt) : null, lbFailures: lb.failures(), events: lb.events() },
  };
}

// ---- runner ---------------------------------------------------------------------------------------------------------

const SCENARIOS: Scenario[] = [
  { id: 'S1', title: 'storage hiccup, 30 pulls each followed by token + UI', run: (b, scope) => storageHiccup(b, scope, true) },
  { id: 'S1b', title: 'storage hiccup, 30 pulls back to back, then 10 token + 10 UI', run: (b, scope) => storageHiccup(b, scope, false) },
  { id: 'S2', title: 'duplicate Host, 3/s for 10 s', run: duplicateHost },
  { id: 'S3', title: 'big token (190 scopes)', run: (b, scope) => bigToken(b, scope, 190) },
  { id: 'S3b', title: 'big token (100 scopes)', run: (b, scope) => bigToken(b, scope, 100) },
  { id: 'S4', title: 'quarantine lock-out', run: quarantineLockOut },
  { id: 'S5', title: 'admin POST /-/nodes/%E0/drain', run: adminUriError },
  { id: 'S6', title: 'health.enabled false: kill, restart', run: ejectionWithoutChecks },
  { id: 'S7', title: '130 trickled uploads from one address, pulls from another, 45 s', run: trickledUploads },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { build: { type: 'string' }, 'sim-build': { type: 'string' }, only: { type: 'string' } },
    strict: true,
  });
  if (values.build === undefined) throw new Error('usage: resilience.js --build DIR [--sim-build DIR] [--only S1,S2,...]');
  const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const build = await loadBuild(resolve(values.build), resolve(values['sim-build'] ?? here));
  const only = values.only?.split(',').map((s) => s.trim().toUpperCase());
  const rows: string[] = [];
  for (const s of SCENARIOS) {
    if (only && !only.includes(s.id.toUpperCase())) continue;
    const scope = new Scope();
    const t0 = now();
    let outcome: Outcome;
    let timer: NodeJS.Timeout | undefined;
    try {
      outcome = await Promise.race([
        s.run(build, scope),
        new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`over the ${SCENARIO_BUDGET_MS / 1000} s budget`)), SCENARIO_BUDGET_MS))),
      ]);
    } catch (err) {
      outcome = { summary: `did not complete: ${(err as Error).message}`, data: { error: (err as Error).message } };
    } finally {
      clearTimeout(timer);
      await scope.close();
    }
    console.log(JSON.stringify({ scenario: s.id, build: build.dir, seconds: Math.round(ms(t0) / 100) / 10, ...outcome.data }));
    rows.push(`| ${s.id} ${s.title} | ${outcome.summary.replaceAll('|', '\\|')} |`);
  }
  console.log(`\n**${build.dir}**\n\n| Scenario | Measured |\n| --- | --- |\n${rows.join('\n')}`);
}

await main();
