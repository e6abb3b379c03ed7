import assert from 'node:assert/strict';
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import http from 'node:http';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/token/libtrust.js';
import { startApp, type StartedApp } from '../support/app.js';
import { anyCase, stringFrom } from '../support/arbitraries.js';
import { rawRequest } from '../support/raw-http.js';
import { startRealHarborCluster, type RealClusterOptions, type RealHarborCluster } from '../support/real-cluster.js';
import { makeTempDir } from '../support/tmp.js';
import { nodeEvidence } from '../support/trusted-cluster.js';

/**
 * Issue 18's rule, checked with generated requests against real registries: client traffic alone
 * never raises a flag, quarantines, ejects a node or evicts another client's pin (only harbor-lb's
 * own probe or health check convicts), and the credentials harbor-lb reads reach the node as read.
 * Each property sends what a client controls through harbor-lb (three healthy real nodes, one
 * cluster key) and, where the answer must be the node's, the same bytes to a node directly.
 *
 * The runs are stateful (real processes, real pins): a failure is reported as found
 * (`endOnFailure`), since shrinking against a cluster a failure may have changed would mislead.
 */

type T = { after: (fn: () => unknown) => void };

const REPO = 'library/props';
/** A blob of known bytes, so ranged reads can be compared with the node's. */
const BLOB = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
const SELF_REALM = 'REALM_BYPASSES_PROXY';
/** The one client whose pins the properties must leave alone. */
const VICTIM = '127.0.0.9';
const NBSP = '\u00a0';
const NEL = '\u0085';
/** U+2028 as its UTF-8 bytes, each sent as one latin1 byte (node:http header values are latin1). */
const U2028 = '\u00e2\u0080\u00a8';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

// ---------------------------------------------------------------------------------------------
// Sending requests exactly as shaped

/** A request as a client shapes it: header lines in order and as written, from a chosen address. */
interface Shaped {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body?: string;
  /** Loopback source address: another address is another client. */
  from: string;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The connection ended before the body did (a registry's 416 after a Range past the end). */
  cut: boolean;
}

/** Header values node's http client sends as they are; anything else needs a raw socket. */
const CLIENT_SENDABLE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * node's client keeps one spelling of a repeated header name (two differently cased Authorization
 * lines become one) and joins Cookie lines: a repeated name goes over a raw socket, as written.
 */
const clientCanSend = (s: Shaped) =>
  s.headers.every(([, v]) => CLIENT_SENDABLE.test(v)) && new Set(s.headers.map(([n]) => n.toLowerCase())).size === s.headers.length;

function viaClient(base: string, s: Shaped): Promise<Answer> {
  const headers = Object.fromEntries(s.headers);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(`${base}${s.path}`, { method: s.method, headers, agent: false, localAddress: s.from }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => {});
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), cut: !res.complete }));
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    // The body is latin1 text: one character, one byte, as over the raw socket.
    req.end(s.body === undefined ? undefined : Buffer.from(s.body, 'latin1'));
  });
}

async function viaRaw(base: string, s: Shaped): Promise<Answer> {
  const head = [`${s.method} ${s.path} HTTP/1.1`, `Host: ${new URL(base).host}`, ...s.headers.map(([n, v]) => `${n}: ${v}`)];
  if (s.body !== undefined) head.push(`Content-Length: ${Buffer.byteLength(s.body, 'latin1')}`);
  const r = await rawRequest(base, [...head, 'Connection: close', '', s.body ?? ''].join('\r\n'), { localAddress: s.from });
  return { status: r.status, headers: {}, body: Buffer.from(r.body, 'latin1'), cut: false };
}

/** Sends `s` to `base` with node's http client when it can send it unchanged, else over a raw socket. */
const exchange = (base: string, s: Shaped): Promise<Answer> => (clientCanSend(s) ? viaClient(base, s) : viaRaw(base, s));

/** The request in a failure message: every byte of it, escaped. */
const shown = (s: Shaped) => JSON.stringify(s);

/** The message of a registry-style JSON error (what harbor-lb answers itself), or the body as text. */
function errorMessage(a: Answer): string {
  try {
    return (JSON.parse(a.body.toString()) as { errors: Array<{ message: string }> }).errors[0]!.message;
  } catch {
    return `not a registry error: ${a.body.toString().slice(0, 200)}`;
  }
}

const address = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 10, max: 250 }).map((i) => `127.0.0.${i}`) },
  { weight: 1, arbitrary: fc.constantFrom('127.0.0.1', VICTIM) },
);

// ---------------------------------------------------------------------------------------------
// The cluster, and what must not change on it

interface Rig {
  cluster: RealHarborCluster;
  lb: StartedApp;
}

async function startRig(t: T, prefix: string, shared: RealClusterOptions = {}): Promise<Rig> {
  const tmp = makeTempDir(prefix);
  t.after(tmp.remove);
  const cluster = await startRealHarborCluster(tmp.dir, 3, [], shared);
  t.after(() => cluster.close());
  const lb = await startApp(
    cluster.nodes.map((n) => n.url),
    {
      balance: { policy: 'round-robin' },
      // Periodic probe rounds off: any probe that runs was asked for by traffic (or by settle()).
      token: { rootCert: cluster.keys.certFile, probe: { enabled: false } },
      sticky: { keys: ['upload', 'session', 'client'] },
      // Checks on, so failed requests make harbor-lb check the node; no periodic check during the test.
      health: { enabled: true, interval: '10m' },
    },
  );
  t.after(() => lb.close());
  await Promise.all(
    lb.app.nodes.all.map((n) => lb.logs.waitFor((l) => l.event === 'node_state' && l.node === n.name && l.to === 'healthy', 10_000, `${n.name} healthy`)),
  );
  return { cluster, lb };
}

/** Runs the probe of every node now and waits for its verdicts: whatever traffic asked for has been judged. */
async function settle(lb: StartedApp): Promise<void> {
  for (const n of lb.app.nodes.all) await lb.app.trustProbe!.probeNode(n);
}

interface Baseline {
  evidence: ReturnType<typeof nodeEvidence>;
  /** Log lines before the property ran. */
  mark: number;
}

async function baseline(lb: StartedApp): Promise<Baseline> {
  await settle(lb);
  const evidence = nodeEvidence(lb);
  // The real cluster's registries name themselves as realm on purpose: that warning is the only flag.
  assert.deepEqual(
    evidence.map((e) => [e.state, e.flags, e.quarantined]),
    [0, 1, 2].map(() => ['healthy', [SELF_REALM], false]),
  );
  return { evidence, mark: lb.logs.lines.length };
}

/** Lines that say a node's standing changed; node_suspected (traffic asking for a check) is allowed. */
const VERDICT_EVENTS = new Set(['node_state', 'node_flag', 'ejection_capped', 'cluster_degraded', 'quarantine_fail_open']);

function assertNothingHeld(lb: StartedApp, base: Baseline, what: string): void {
  assert.deepEqual(nodeEvidence(lb), base.evidence, `${what}: flags, quarantine, state and failures of every node unchanged`);
  const changes = lb.logs.lines.slice(base.mark).filter((l) => VERDICT_EVENTS.has(String(l.event)));
  assert.deepEqual(changes.map((l) => `${String(l.event)} ${String(l.node)} ${String(l.code ?? l.to ?? '')}`), [], `${what}: no node changed standing`);
}

type Line = Record<string, unknown>;

/**
 * Sends `s` through harbor-lb and waits for its routing line, which may trail the answer: requests
 * go one at a time, so the next line written is this request's.
 */
async function proxied(lb: StartedApp, s: Shaped): Promise<{ answer: Answer; line: Line }> {
  const before = lb.logs.requests().length;
  const answer = await exchange(lb.url, s);
  await lb.logs.waitFor((l) => l.event === 'request' && lb.logs.requests().length > before, 5000, `the routing line of ${shown(s)}`);
  return { answer, line: lb.logs.requests()[before]! };
}

const nodeIndex = (line: Line) => Number(String(line.node).slice(1)) - 1;

async function tokenOf(lb: StartedApp, scope: string, authorization?: string, from = '127.0.0.1'): Promise<{ token: string; line: Line }> {
  const q = new URLSearchParams({ service: 'harbor-registry', scope });
  const { answer, line } = await proxied(lb, { method: 'GET', path: `/service/token?${q.toString()}`, headers: authorization ? [['Authorization', authorization]] : [], from });
  assert.equal(answer.status, 200, answer.body.toString());
  return { token: (JSON.parse(answer.body.toString()) as { token: string }).token, line };
}

const pathOf = (location: string | string[] | undefined) => {
  const u = new URL(String(location));
  return `${u.pathname}${u.search}`;
};

/** POST through harbor-lb: the upload's location (path and query) and the POST's routing line. */
async function beginUpload(lb: StartedApp, token: string, from: string): Promise<{ location: string; line: Line }> {
  const { answer, line } = await proxied(lb, { method: 'POST', path: `/v2/${REPO}/blobs/uploads/`, headers: [['Authorization', `Bearer ${token}`]], from });
  assert.equal(answer.status, 202, answer.body.toString());
  return { location: pathOf(answer.headers.location), line };
}

/** PATCH and PUT of `blob` into a begun upload: their statuses and routing lines. */
async function finishUpload(lb: StartedApp, token: string, location: string, blob: Buffer, from: string): Promise<Array<{ status: number; line: Line }>> {
  const auth: [string, string] = ['Authorization', `Bearer ${token}`];
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const patch = await proxied(lb, { method: 'PATCH', path: location, headers: [auth, ['Content-Type', 'application/octet-stream']], body: blob.toString('latin1'), from });
  const done = [{ status: patch.answer.status, line: patch.line }];
  if (patch.answer.status !== 202) return done;
  const put = await proxied(lb, { method: 'PUT', path: `${pathOf(patch.answer.headers.location)}&digest=${digest}`, headers: [auth], from });
  return [...done, { status: put.answer.status, line: put.line }];
}

async function pushBlob(lb: StartedApp, token: string): Promise<string> {
  const { location } = await beginUpload(lb, token, '127.0.0.1');
  assert.deepEqual((await finishUpload(lb, token, location, BLOB, '127.0.0.1')).map((x) => x.status), [202, 201]);
  return `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
}

/** A token a client could hold without the cluster's help (another key) or from an earlier day (expired, another audience). */
function sign(key: KeyObject, claims: { sub?: string; kid?: string; exp?: number; aud?: string }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ access: [{ type: 'repository', name: REPO, actions: ['pull'] }] })
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: claims.kid ?? libtrustKeyId(createPublicKey(key)) })
    .setIssuer('harbor-token-issuer')
    .setAudience(claims.aud ?? 'harbor-registry')
    .setIssuedAt(now)
    .setNotBefore(now - 3600)
    .setExpirationTime(claims.exp ?? now + 1800);
  if (claims.sub) jwt.setSubject(claims.sub);
  return jwt.sign(key);
}

async function pinEvictions(lb: StartedApp): Promise<Record<string, number>> {
  const text = (await viaClient(lb.adminUrl, { method: 'GET', path: '/metrics', headers: [], from: '127.0.0.1' })).body.toString();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^harbor_lb_pin_evictions_total\{store="\w+",space="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cookies as Go's net/http reads them (Harbor core: beego's sid, gorilla's _gorilla_csrf)

const SESSION_COOKIES = ['sid', 'beegosessionID', '_gorilla_csrf'] as const;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const goTrim = (s: string) => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');

/** Every value of `name`, in order, as Go's net/http readCookies reads them today (names trimmed since golang/go#52121). */
function goCookieValues(lines: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (const line of lines) {
    for (const raw of goTrim(line).split(';')) {
      const part = goTrim(raw);
      if (part === '') continue;
      const eq = part.indexOf('=');
      // strings.Cut: no "=" is a cookie with an empty value; the name is trimmed.
      const n = goTrim(eq < 0 ? part : part.slice(0, eq));
      let v = eq < 0 ? '' : part.slice(eq + 1);
      if (!COOKIE_NAME.test(n) || n !== name) continue;
      if (v.length > 1 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      if (!/^[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*$/.test(v)) continue;
      values.push(v);
    }
  }
  return values;
}

/** The session cookie that counts (first of sid, beegosessionID, _gorilla_csrf present) and whether its values differ. */
function sessionAsGoReadsIt(lines: readonly string[]): { name: string; ambiguous: boolean } | undefined {
  for (const name of SESSION_COOKIES) {
    const values = goCookieValues(lines, name);
    if (values.length > 0) return { name, ambiguous: new Set(values).size > 1 };
  }
  return undefined;
}

/** Whether `name` appears spelled otherwise than `name=…` (a space before "=", or bare), on which readers disagree. */
function spelledOtherwise(lines: readonly string[], name: string): boolean {
  return lines.some((line) =>
    line.split(';').some((raw) => {
      const part = goTrim(raw);
      const eq = part.indexOf('=');
      const spelled = eq < 0 ? part : part.slice(0, eq);
      return goTrim(spelled) === name && (eq < 0 || spelled !== name);
    }),
  );
}

/** Values Go takes as they are: bytes 0x20-0x7e but `"`, `;` and `\`; none ends in a space (a pair is trimmed). */
const cookieValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('', 'a', 'b', 'v1', 'c0ffee', 'x=y', ' lead') },
  { weight: 1, arbitrary: stringFrom([...'aZ09-_.~!#$%&\'()*+/:<=>?@[]^`{|}', ' ', ','], 16).map((v) => v.trimEnd()) },
);
/** Values Go skips (a byte outside its set, a lone quote): noise that must not count. */
const skippedValue = fc.constantFrom('a"b', '"a', 'a\\b', `a${NBSP}`, U2028, '\u00ff', 'a"');
const otherCookie = fc.constantFrom('lang=en', 'Sid=zz', 'SID=zz', 'sid2=zz', 'xsid=zz', 'harbor-lang=en-us', '=sid', '==', 'beegosessionid=zz');
const cookieSeparator = fc.constantFrom('; ', ';', ' ; ', ';\t', '; ; ', ';;');

/**
 * Cookie header lines as clients (and attackers) write them. Each session cookie mostly repeats
 * one value per request, quoted or not (the same cookie twice is no ambiguity), sometimes another.
 * `pair` spells one session cookie of value v; the Go-agreeing spelling is `name=v`.
 */
function cookieLines(pair: fc.Arbitrary<(name: string, value: string) => string>, lines: { minLength: number; maxLength: number }): fc.Arbitrary<string[]> {
  return fc.record({ sid: cookieValue, beegosessionID: cookieValue, _gorilla_csrf: cookieValue }).chain((usual) => {
    const session = fc
      .tuple(fc.constantFrom(...SESSION_COOKIES), fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: cookieValue }), fc.boolean(), pair)
      .map(([name, other, quoted, spell]) => {
        const v = other ?? usual[name];
        return spell(name, quoted ? `"${v}"` : v);
      });
    const piece = fc.oneof(
      { weight: 4, arbitrary: session },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...SESSION_COOKIES), skippedValue).map(([n, v]) => `${n}=${v}`) },
      { weight: 2, arbitrary: otherCookie },
    );
    const line = fc
      .tuple(fc.array(fc.tuple(piece, cookieSeparator), { minLength: 1, maxLength: 5 }), fc.constantFrom('', ' ', '\t'))
      .map(([pieces, pad]) => pad + pieces.map(([p, sep], i) => (i === 0 ? p : sep + p)).join('') + pad);
    return fc.array(line, lines);
  });
}
/** `name=v`, where harbor-lb and Go agree; Go's other spellings (`name =v`, a bare `name`) are the todo property. */
const goAgreeing = fc.constant((name: string, value: string) => `${name}=${value}`);

// ---------------------------------------------------------------------------------------------

describe('client traffic through harbor-lb to real registries: suspicion at most, never a verdict (issue 18)', () => {
  it('property 1: Authorization shapes (scheme case, whitespace, latin1 bytes, duplicates, garbage, truncated and foreign tokens, odd Basic): the registry\'s answer or harbor-lb\'s 400, nothing held against a node', async (t) => {
    const { cluster, lb } = await startRig(t, 'props-auth');
    const anon = (await tokenOf(lb, `repository:${REPO}:pull`)).token;
    const admin = (await tokenOf(lb, `repository:${REPO}:pull,push`, basic('admin', 'Harbor12345'))).token;
    const digest = await pushBlob(lb, admin);
    const clusterKid = libtrustKeyId(createPublicKey(cluster.keys.key));
    const good = [anon, admin];
    // cluster.foreign is another key pair (pki.ts makeTokenKeyPair) no node trusts.
    const tokens = [
      ...good,
      await sign(cluster.foreign.key, { sub: 'admin' }),
      await sign(cluster.foreign.key, { sub: 'admin', kid: clusterKid }),
      await sign(cluster.keys.key, { sub: 'admin', exp: Math.floor(Date.now() / 1000) - 3600 }),
      await sign(cluster.keys.key, { sub: 'admin', aud: 'made-up' }),
    ];
    const base = await baseline(lb);

    const token = fc.constantFrom(...tokens);
    const inside = fc.constantFrom(' ', '\t', NBSP, NEL, U2028, '\x01', '\x0b', '\x7f');
    const credential = fc.oneof(
      { weight: 4, arbitrary: token },
      { weight: 2, arbitrary: token.chain((tok) => fc.integer({ min: 0, max: tok.length - 1 }).map((n) => tok.slice(0, n))) },
      { weight: 2, arbitrary: fc.tuple(token, fc.constantFrom('=', '==', '.', '.x', 'A', '%3D', ',', NBSP)).map(([tok, pad]) => tok + pad) },
      { weight: 2, arbitrary: fc.tuple(token, fc.nat(), inside).map(([tok, at, c]) => tok.slice(0, at % tok.length) + c + tok.slice(at % tok.length)) },
      { weight: 1, arbitrary: stringFrom([...'ABCabc019-_', '.', '.', '=', '+', '/'], 60) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')) },
      { weight: 1, arbitrary: fc.constantFrom('', 'a.b.c', 'e30.e30.', 'e30.e30.e30', '..', 'null') },
    );
    const around = fc.oneof({ weight: 4, arbitrary: fc.constant('') }, fc.constantFrom(' ', '\t', NBSP, NEL, U2028));
    const separator = fc.oneof({ weight: 4, arbitrary: fc.constant(' ') }, fc.constantFrom('  ', '\t', ' \t', NBSP, U2028, ''));
    const scheme = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'bEaReR');
    // The one form every reader takes, with a token the registries accept: harbor-lb reads and judges it.
    const canonical = fc.tuple(scheme, fc.constantFrom(...good)).map(([sc, tok]) => `${sc} ${tok}`);
    const bearer = fc.tuple(around, scheme, separator, credential, around).map(([a, sc, sep, c, b]) => `${a}${sc}${sep}${c}${b}`);
    // Basic as Go's parseBasicAuth would and would not read it: canonical, unpadded, URL-safe, spare bits set, a space inside.
    const basicCredentials = fc
      .tuple(
        fc.oneof(fc.constantFrom('admin', 'Admin', 'mallory', ''), fc.string({ maxLength: 12 })),
        fc.oneof(fc.constantFrom('Harbor12345', 'wrong'), fc.string({ maxLength: 12 })),
        fc.constantFrom('canonical', 'unpadded', 'url-safe', 'spare-bits', 'spaced', 'no-colon'),
      )
      .map(([user, password, form]) => {
        const b64 = Buffer.from(form === 'no-colon' ? user : `${user}:${password}`).toString('base64');
        if (form === 'unpadded') return b64.replace(/=+$/, '');
        if (form === 'url-safe') return b64.replaceAll('+', '-').replaceAll('/', '_');
        if (form === 'spaced') return `${b64.slice(0, 4)} ${b64.slice(4)}`;
        if (form === 'spare-bits' && b64.endsWith('=')) {
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
          const at = b64.indexOf('=') - 1;
          return b64.slice(0, at) + alphabet[alphabet.indexOf(b64[at]!) + 1]! + b64.slice(at + 1);
        }
        return b64;
      });
    const basicValue = fc.tuple(around, anyCase('basic'), separator, basicCredentials).map(([a, sc, sep, c]) => `${a}${sc}${sep}${c}`);
    const authValue = fc.oneof(
      { weight: 2, arbitrary: canonical },
      { weight: 6, arbitrary: bearer },
      { weight: 3, arbitrary: basicValue },
      { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Basic', 'Negotiate abc', 'Token x.y.z') },
    );
    const authHeader = fc.tuple(anyCase('authorization'), authValue);
    const request = fc.record({
      method: fc.constantFrom('GET', 'HEAD'),
      path: fc.constantFrom('/v2/', `/v2/${REPO}/blobs/${digest}`, `/v2/${REPO}/manifests/latest`, `/v2/${REPO}/tags/list`),
      headers: fc.oneof(
        { weight: 10, arbitrary: authHeader.map((h): Array<[string, string]> => [h]) },
        { weight: 2, arbitrary: fc.tuple(authHeader, authHeader).map((hs): Array<[string, string]> => [...hs]) },
        { weight: 1, arbitrary: fc.constant<Array<[string, string]>>([]) },
      ),
      from: address,
    });

    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (s: Shaped) => {
        const what = shown(s);
        const auths = s.headers.filter(([n]) => n.toLowerCase() === 'authorization').length;
        let got: Answer;
        if (!s.headers.every(([, v]) => CLIENT_SENDABLE.test(v))) {
          // A control byte: node:http's parser refuses the request before harbor-lb reads a header (no routing line).
          got = await exchange(lb.url, s);
          assert.equal(got.status, 400, what);
          if (s.method !== 'HEAD') assert.match(errorMessage(got), /could not be parsed/, what);
        } else if (auths > 1) {
          const { answer, line } = await proxied(lb, s);
          got = answer;
          assert.equal(got.status, 400, what);
          if (s.method !== 'HEAD') assert.match(errorMessage(got), /more than one Authorization header/, what);
          assert.deepEqual([line.node, line.error], [null, 'REQUEST_NOT_FORWARDABLE'], what);
        } else {
          const { answer, line } = await proxied(lb, s);
          got = answer;
          assert.ok(line.node !== null, `${what}: forwarded`);
          // What the registry answers to these very bytes is what the client must get.
          const direct = await exchange(cluster.registries[nodeIndex(line)]!.url, s);
          assert.equal(got.status, direct.status, `${what}: the registry answers ${direct.status} directly, harbor-lb ${got.status}`);
        }
        statuses.set(got.status, (statuses.get(got.status) ?? 0) + 1);
        assert.ok(got.status >= 200 && got.status < 500, `${what}: answered ${got.status}`);
        assertNothingHeld(lb, base, what);
      }),
      { numRuns: 300, endOnFailure: true },
    );
    await settle(lb);
    assertNothingHeld(lb, base, 'after every run, the probes settled');
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok([200, 400, 401].every((st) => (statuses.get(st) ?? 0) > 0), 'the runs reached accepted, refused and malformed credentials');
  });

  for (const anyService of [false, true]) {
    it(`property 2${anyService ? ' (a token service that issues for any service, aud copied from the client)' : ''}: /service/token with generated service, scope, account and Basic: the node's answer, nothing held against a node`, async (t) => {
      const { cluster, lb } = await startRig(t, 'props-token', { tokenAnyService: anyService });
      const base = await baseline(lb);

      const service = fc.oneof(
        { weight: 3, arbitrary: fc.constant('harbor-registry') },
        { weight: 2, arbitrary: fc.constantFrom('made-up', 'Harbor-Registry', 'harbor-registry ', ' harbor-registry', '', 'harbor-registry,registry', 'docker.io', 'harbor-registry\u0000') },
        { weight: 1, arbitrary: stringFrom(['a', 'z', '-', '.', ':', '/', ' ', '%', '\u00e9', '&', '='], 20) },
      );
      const knownScope = fc.constantFrom(
        `repository:${REPO}:pull`,
        `repository:${REPO}:pull,push`,
        `repository:${REPO}:*`,
        'repository:library/other:pull',
        'registry:catalog:*',
        `repository:${REPO}:delete`,
        '',
        'repository',
        ':::',
        `repository:${REPO}`,
        'repository::pull',
        `repository:${REPO}:pull repository:library/x:push`,
      );
      const scope = fc.oneof({ weight: 3, arbitrary: knownScope }, { weight: 1, arbitrary: stringFrom(['repository', ':', '/', ',', 'pull', 'push', ' ', 'a', '%', '\u00ff'], 12) });
      const request = fc.record({
        services: fc.array(service, { maxLength: 2 }),
        scopes: fc.oneof(
          { weight: 6, arbitrary: fc.array(scope, { maxLength: 4 }) },
          // Huge lists (a ~20 KB query, a token of 200 grants) and one scope repeated.
          { weight: 1, arbitrary: fc.array(knownScope, { minLength: 100, maxLength: 200 }) },
          { weight: 1, arbitrary: fc.tuple(scope, fc.integer({ min: 2, max: 50 })).map(([x, n]) => Array<string>(n).fill(x)) },
        ),
        account: fc.option(fc.oneof(fc.constantFrom('admin', 'mallory', ''), stringFrom(['a', 'Z', '@', '.', ' ', '\u00e9'], 8)), { nil: undefined }),
        login: fc.constantFrom('none', 'good', 'wrong-password', 'made-up-user'),
        scheme: anyCase('basic'),
        user: fc.string({ minLength: 1, maxLength: 12 }).filter((u) => u !== 'admin' && !u.includes(':')),
        from: address,
      });

      let reissued = 0;
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const q = new URLSearchParams();
          for (const x of r.services) q.append('service', x);
          for (const x of r.scopes) q.append('scope', x);
          if (r.account !== undefined) q.append('account', r.account);
          const credentials = { none: undefined, good: 'admin:Harbor12345', 'wrong-password': 'admin:nope', 'made-up-user': `${r.user}:Harbor12345` }[r.login];
          const s: Shaped = {
            method: 'GET',
            path: `/service/token?${q.toString()}`,
            headers: credentials === undefined ? [] : [['Authorization', `${r.scheme} ${Buffer.from(credentials).toString('base64')}`]],
            from: r.from,
          };
          const what = shown(s);
          // Harbor's token service: an unknown service is 400 (unless it issues for any), a failed login 401.
          const first = r.services[0];
          const expected = first !== undefined && first !== 'harbor-registry' && !anyService ? 400 : r.login === 'none' || r.login === 'good' ? 200 : 401;
          const { answer, line } = await proxied(lb, s);
          assert.equal(answer.status, expected, `${what}: ${answer.body.toString().slice(0, 200)}`);
          assert.ok(line.node !== null, `${what}: answered by a node`);
          if (line.reason === 'reissued') reissued++;
          if (answer.status === 200) {
            // The token the client got, presented as a client would: the registry's answer, as directly.
            const tok = (JSON.parse(answer.body.toString()) as { token: string }).token;
            const v2: Shaped = { method: 'GET', path: '/v2/', headers: [['Authorization', `Bearer ${tok}`]], from: r.from };
            const presented = await proxied(lb, v2);
            const direct = await exchange(cluster.registries[nodeIndex(presented.line)]!.url, v2);
            const aud = !anyService || first === undefined ? 'harbor-registry' : first;
            assert.deepEqual([presented.answer.status, direct.status], aud === 'harbor-registry' ? [200, 200] : [401, 401], `${what}: its token at /v2/`);
          }
          assertNothingHeld(lb, base, what);
        }),
        { numRuns: 150, endOnFailure: true },
      );
      await settle(lb);
      assertNothingHeld(lb, base, 'after every run, the probes settled');
      t.diagnostic(`token requests reissued on another node: ${reissued}`);
      if (anyService) {
        assert.ok(reissued > 0, 'tokens for made-up services came back: traffic made harbor-lb suspect nodes');
        assert.ok(lb.logs.lines.some((l) => l.event === 'node_suspected' && l.cause === 'token'), 'suspected, then cleared by the probe');
      }
    });
  }

  it('property 3: cookie shapes on UI paths (quoting, spaces, duplicates, many Cookie lines): 400 for two values of the session cookie, the rest forwarded; another client\'s upload, login and UI session stay pinned', async (t) => {
    const { cluster, lb } = await startRig(t, 'props-cookies');

    // Another client's real pins, made as clients make them: a login, an upload begun, a UI session.
    const tokenScope = `repository:${REPO}:pull,push`;
    const adminLogin = basic('admin', 'Harbor12345');
    const login = await tokenOf(lb, tokenScope, adminLogin, VICTIM);
    const upload = await beginUpload(lb, login.token, VICTIM);
    const visit = await proxied(lb, { method: 'GET', path: '/', headers: [], from: VICTIM });
    const csrfCookie = /^_gorilla_csrf=([^;]+)/.exec(String(visit.answer.headers['set-cookie']?.[0]))![1]!;
    const uiLogin = await proxied(lb, {
      method: 'POST',
      path: '/c/login',
      headers: [
        ['Cookie', `_gorilla_csrf=${csrfCookie}`],
        ['X-Harbor-CSRF-Token', String(visit.answer.headers['x-harbor-csrf-token'])],
        ['Content-Type', 'application/x-www-form-urlencoded'],
      ],
      body: 'principal=admin&password=Harbor12345',
      from: VICTIM,
    });
    assert.equal(uiLogin.answer.status, 200);
    const sid = /^sid=([^;]+)/.exec(String(uiLogin.answer.headers['set-cookie']?.[0]))![1]!;
    const base = await baseline(lb);

    const request = fc.record({
      method: fc.constantFrom('GET', 'GET', 'HEAD', 'POST'),
      path: fc.constantFrom('/', '/api/v2.0/projects', '/c/login'),
      cookies: fc.oneof({ weight: 6, arbitrary: cookieLines(goAgreeing, { minLength: 1, maxLength: 3 }) }, { weight: 1, arbitrary: cookieLines(goAgreeing, { minLength: 8, maxLength: 30 }) }),
      cookieName: anyCase('cookie'),
      from: address,
    });
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const s: Shaped = {
          method: r.method,
          path: r.path,
          headers: r.cookies.map((c): [string, string] => [r.cookieName, c]),
          ...(r.method === 'POST' ? { body: 'principal=admin&password=nope' } : {}),
          from: r.from,
        };
        const what = shown(s);
        const session = sessionAsGoReadsIt(r.cookies);
        const { answer: got, line } = await proxied(lb, s);
        assert.ok(got.status >= 200 && got.status < 500, `${what}: answered ${got.status}`);
        if (session?.ambiguous === true) {
          refused++;
          assert.equal(got.status, 400, `${what}: two values of ${session.name}`);
          if (s.method !== 'HEAD') assert.match(errorMessage(got), /two different values of the session cookie/, what);
          assert.equal(line.node, null, what);
        } else {
          assert.ok(line.node !== null, `${what}: forwarded (harbor-lb answered ${got.status} ${got.body.toString().slice(0, 160)})`);
          const direct = await exchange(cluster.nodes[nodeIndex(line)]!.url, s);
          assert.equal(got.status, direct.status, `${what}: the node answers ${direct.status} directly`);
        }
        assertNothingHeld(lb, base, what);
      }),
      { numRuns: 300, endOnFailure: true },
    );
    t.diagnostic(`refused as ambiguous: ${refused} of 300`);
    assert.ok(refused > 0, 'the runs reached two values of a session cookie');

    // The other client's requests still go where its pins say.
    const again = await tokenOf(lb, tokenScope, adminLogin, VICTIM);
    assert.deepEqual([again.line.reason, again.line.node], ['pinned', login.line.node], 'the login stays on its node');
    const finished = await finishUpload(lb, login.token, upload.location, BLOB, VICTIM);
    assert.deepEqual(
      finished.map(({ status, line }) => [line.method, status, line.reason, line.affinity, line.node]),
      [
        ['PATCH', 202, 'pinned', 'upload', upload.line.node],
        ['PUT', 201, 'pinned', 'upload', upload.line.node],
      ],
      'the upload finishes on the node that began it',
    );
    const ui = await proxied(lb, { method: 'GET', path: '/api/v2.0/projects', headers: [['Cookie', `sid=${sid}`]], from: VICTIM });
    assert.deepEqual([ui.line.reason, ui.line.affinity, ui.line.node], ['pinned', 'session', uiLogin.line.node], 'the UI session stays on its node');
    const evictions = await pinEvictions(lb);
    t.diagnostic(`pin evictions: ${JSON.stringify(evictions)}`);
    assert.deepEqual([evictions.upload, evictions.session], [0, 0]);
    await settle(lb);
    assertNothingHeld(lb, base, 'after every run, the probes settled');
  });

  it(
    'property 3, other spellings: `sid =v` and a bare `sid` are cookies to Go since 1.20 and not to older readers: a session cookie so spelled gets 400, as do two values',
    async (t) => {
      const { lb } = await startRig(t, 'props-cookie-spelling');
      const base = await baseline(lb);
      const spelling = fc.constantFrom(
        (name: string, value: string) => `${name}=${value}`,
        (name: string, value: string) => `${name} =${value}`,
        (name: string, value: string) => `${name}\t= ${value}`,
        (name: string) => name,
      );
      await fc.assert(
        fc.asyncProperty(cookieLines(spelling, { minLength: 1, maxLength: 3 }), address, async (cookies, from) => {
          const s: Shaped = { method: 'GET', path: '/api/v2.0/projects', headers: cookies.map((c): [string, string] => ['Cookie', c]), from };
          const session = sessionAsGoReadsIt(cookies);
          const { answer, line } = await proxied(lb, s);
          const oddlySpelled = SESSION_COOKIES.find((n) => spelledOtherwise(cookies, n));
          if (session?.ambiguous === true || oddlySpelled !== undefined) {
            assert.deepEqual([answer.status, line.node], [400, null], `${shown(s)}: ${oddlySpelled !== undefined ? `readers disagree on ${oddlySpelled}` : `Go reads two values of ${session!.name}`}`);
          }
          else assert.ok(line.node !== null, `${shown(s)}: forwarded`);
          assertNothingHeld(lb, base, shown(s));
        }),
        { numRuns: 60, endOnFailure: true },
      );
    },
  );

  it('property 4: Range values on a real blob (valid, past the end, reversed, multi-range, garbage, two Range lines): the registry\'s status, never a 5xx, no node ejected', async (t) => {
    const { cluster, lb } = await startRig(t, 'props-range');
    const admin = (await tokenOf(lb, `repository:${REPO}:pull,push`, basic('admin', 'Harbor12345'))).token;
    const digest = await pushBlob(lb, admin);
    const anon = (await tokenOf(lb, `repository:${REPO}:pull`)).token;
    const base = await baseline(lb);

    const len = BLOB.length;
    const at = fc.integer({ min: 0, max: len - 1 });
    const past = fc.integer({ min: len, max: 10 * len });
    const spec = fc.oneof(
      { weight: 3, arbitrary: fc.tuple(at, at).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`) },
      { weight: 2, arbitrary: at.map((a) => `${a}-`) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: len + 10 }).map((n) => `-${n}`) },
      { weight: 1, arbitrary: past.map((a) => `${a}-`) },
      { weight: 1, arbitrary: fc.tuple(past, fc.nat(5000)).map(([a, d]) => `${a}-${a + d}`) },
      { weight: 1, arbitrary: fc.tuple(at, at).filter(([a, b]) => a !== b).map(([a, b]) => `${Math.max(a, b)}-${Math.min(a, b)}`) },
      { weight: 1, arbitrary: fc.constantFrom('0-99999999999999999999', '-', '', 'abc', '1-2-3', ' 0-1', '0 - 1', '0x1-0x2', '+1-2', '1.5-2') },
    );
    const range = fc.oneof(
      { weight: 4, arbitrary: spec.map((x) => `bytes=${x}`) },
      { weight: 2, arbitrary: fc.array(spec, { minLength: 2, maxLength: 5 }).map((xs) => `bytes=${xs.join(',')}`) },
      { weight: 1, arbitrary: fc.constantFrom('bytes=', 'bytes', 'items=0-1', 'BYTES=0-1', 'bytes = 0-1', 'bytes=0-1,', 'bytes=,0-1', `bytes=0-1${NBSP}`) },
      { weight: 1, arbitrary: stringFrom(['bytes', '=', '-', ',', '0', '9', ' ', 'x', NBSP], 12) },
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'GET', 'HEAD'),
      token: fc.constantFrom(admin, anon),
      ranges: fc.oneof(
        { weight: 8, arbitrary: range.map((x) => [x]) },
        { weight: 1, arbitrary: fc.tuple(range, range).map((xs) => [...xs]) },
        { weight: 1, arbitrary: fc.constant<string[]>([]) },
      ),
      from: address,
    });
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const s: Shaped = {
          method: r.method,
          path: `/v2/${REPO}/blobs/${digest}`,
          headers: [['Authorization', `Bearer ${r.token}`], ...r.ranges.map((x): [string, string] => ['Range', x])],
          from: r.from,
        };
        const what = shown({ ...s, headers: s.headers.filter(([n]) => n === 'Range') });
        const { answer: got, line } = await proxied(lb, s);
        statuses.set(got.status, (statuses.get(got.status) ?? 0) + 1);
        assert.ok(got.status >= 200 && got.status < 500, `${what}: answered ${got.status}`);
        assert.ok(line.node !== null, `${what}: forwarded`);
        const direct = await exchange(cluster.registries[nodeIndex(line)]!.url, s);
        assert.deepEqual([got.status, got.cut], [direct.status, direct.cut], `${what}: the registry answers ${direct.status}${direct.cut ? ' (cut)' : ''} directly`);
        if (!got.cut && got.headers['content-range'] !== undefined) assert.deepEqual(got.body, direct.body, `${what}: the bytes of the range`);
        else if (!got.cut) assert.equal(got.body.length, direct.body.length, `${what}: as many bytes (a multipart body has its own boundary)`);
        assertNothingHeld(lb, base, what);
      }),
      { numRuns: 300, endOnFailure: true },
    );
    await settle(lb);
    assertNothingHeld(lb, base, 'after every run, the probes settled');
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok([200, 206, 416].every((st) => (statuses.get(st) ?? 0) > 0), 'the runs reached whole, ranged and unsatisfiable reads');
  });
});
