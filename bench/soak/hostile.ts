import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { SoakContext, Target } from './context.js';
import { Aborted, request, TransportError, type Reply } from './http.js';
import { sleep } from './user.js';

/**
 * The hostile client: the request shapes that, before issue 18, made harbor-lb convict a healthy
 * node (flag it, quarantine it, eject it) or evict someone else's pin. It runs from its own
 * loopback address throughout the soak at a few requests a second, one shape after the other, and
 * one slowly read pull at a time beside them. What it gets is counted per shape; whether it
 * convicted anything is judged from the instances' logs (report.ts, "client traffic convicted no
 * node") and their pin eviction counters.
 */
export const HOSTILE_ADDRESS = '127.0.0.4';
/** Between two requests of the shapes' lane: about 2.5 requests a second. */
export const HOSTILE_EVERY_MS = 400;
const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
const REPO = 'library/soak-hostile';
/** The hostile client's own blob: large enough that a paused reader holds the answer up in harbor-lb. */
const BLOB_SIZE = 4 * 1024 * 1024;
const SLOW_READ = { pauses: 3, pauseMs: 4000, firstAfter: 1, thenEvery: 1024 * 1024 };
const TIMEOUT_MS = 30_000;
/** A token is fetched again after this long (the simulated token service issues them for 30 minutes). */
const TOKEN_TTL_MS = 10 * 60_000;
const UI_PATHS = ['/', '/harbor/projects', '/harbor/sign-in'];

/** The shapes, in the order the lane cycles through them, with what each sends (for the report). */
export const HOSTILE_SHAPES = [
  { shape: 'bearer + 0xA0', what: 'a valid token (pull, push) sent as `Authorization: Bearer <token>` plus a trailing 0xA0 byte, raw socket, `GET /v2/`' },
  { shape: 'login flood', what: 'a token request with a new made-up Basic user each time, every other one also with a made-up `service`' },
  { shape: 'Range past the end', what: 'a blob `GET` of its own 4 MiB blob with `Range: bytes=<size+1024>-<size+2047>`' },
  { shape: 'two Authorization', what: 'two `Authorization` headers (Bearer and Basic), raw socket, on `GET /v2/` and on a token request in turn' },
  { shape: 'made-up sid', what: 'a UI `GET` (`/`, `/harbor/projects`, `/harbor/sign-in`) with a new random `sid` cookie' },
  { shape: 'two sid values', what: 'a UI `GET` with two different `sid` values, in one Cookie header and in two in turn, raw socket' },
  { shape: 'slow read', what: 'a `GET` of its own 4 MiB blob read with 3 pauses of 4 s (one at a time, beside the other shapes), sha256 checked' },
] as const;
export type HostileShape = (typeof HOSTILE_SHAPES)[number]['shape'];

/** Runs the hostile client until `stop` fires. */
export async function hostileClient(ctx: SoakContext, stop: AbortSignal, everyMs = HOSTILE_EVERY_MS): Promise<void> {
  const h = new Hostile(ctx, stop);
  try {
    await Promise.all([h.shapesLane(everyMs), h.slowReadLane()]);
  } finally {
    h.close();
  }
}

class Hostile {
  readonly #agents: http.Agent[];
  #turn = 0;
  #n = 0;
  #token: { value: string; at: number } | undefined;
  #tokenFetch: Promise<string | undefined> | undefined;
  #blob: { digest: string; size: number } | undefined;
  #blobPush: Promise<{ digest: string; size: number } | undefined> | undefined;
  #blobTriedAt = 0;

  constructor(
    private readonly ctx: SoakContext,
    private readonly stop: AbortSignal,
  ) {
    this.#agents = ctx.targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 2 }));
  }

  close(): void {
    for (const a of this.#agents) a.destroy();
  }

  async shapesLane(everyMs: number): Promise<void> {
    const shapes: Array<(i: number) => Promise<void>> = [
      () => this.#nbspBearer(),
      (i) => this.#loginFlood(i),
      () => this.#rangePastEnd(),
      (i) => this.#twoAuthorizations(i),
      (i) => this.#madeUpSid(i),
      (i) => this.#twoSids(i),
    ];
    for (let i = 0; i < 1_000_000 && !this.stop.aborted; i++) {
      const round = Math.floor(i / shapes.length);
      try {
        await shapes[i % shapes.length]!(round);
      } catch (err) {
        if (err instanceof Aborted) break;
        this.ctx.hostileSetup.add(`internal error: ${(err as Error).message.slice(0, 80)}`);
      }
      await sleep(everyMs, this.stop).catch(() => undefined);
    }
  }

  async slowReadLane(): Promise<void> {
    for (let i = 0; i < 100_000 && !this.stop.aborted; i++) {
      try {
        const blob = await this.#ownBlob();
        const token = await this.#validToken();
        if (blob === undefined || token === undefined) {
          await sleep(2000, this.stop).catch(() => undefined);
          continue;
        }
        const target = this.#next().target;
        const began = Date.now();
        const outcome = await this.#slowRead(target, blob, token);
        if (outcome === undefined) break;
        const afterS = Math.round((Date.now() - began) / 100) / 10;
        this.ctx.hostileAnswer('slow read', outcome);
        if (this.ctx.hostileSlowReads.length < 1000) this.ctx.hostileSlowReads.push({ t: this.ctx.t(), instance: target.name, afterS, outcome });
        this.ctx.emit('hostile_slow_read', { instance: target.name, afterS, outcome });
      } catch (err) {
        if (err instanceof Aborted) break;
        this.ctx.hostileSetup.add(`internal error: ${(err as Error).message.slice(0, 80)}`);
      }
      await sleep(1000, this.stop).catch(() => undefined);
    }
  }

  // ---- the shapes --------------------------------------------------------------------------

  /** A token harbor-lb cannot read (its bearer grammar has no 0xA0) but that looks valid to a lenient reader; the registry refuses it. */
  async #nbspBearer(): Promise<void> {
    const token = await this.#validToken();
    if (token === undefined) return;
    const { target } = this.#next();
    const head = `GET /v2/ HTTP/1.1\r\nHost: ${this.ctx.hostHeader}\r\nUser-Agent: soak-hostile\r\nAuthorization: Bearer ${token}\xa0\r\n\r\n`;
    this.#count('bearer + 0xA0', await this.#raw(target, head));
  }

  /** Token requests the nodes refuse, each for a user (and every other one a service) nobody has heard of. */
  async #loginFlood(round: number): Promise<void> {
    const n = ++this.#n;
    const user = `flood-${n}-${randomBytes(3).toString('hex')}`;
    const q = new URLSearchParams({ service: round % 2 === 0 ? `made-up-registry-${n}` : 'harbor-registry', scope: `repository:library/${user}:pull,push` });
    const auth = `Basic ${Buffer.from(`${user}:${randomBytes(6).toString('hex')}`).toString('base64')}`;
    const r = await this.#ask('GET', `/service/token?${q.toString()}`, { authorization: auth });
    this.#count('login flood', r.outcome);
  }

  /** A byte range past the end of a blob that exists: the registry answers 416 with the blob's length as Content-Length, then closes. */
  async #rangePastEnd(): Promise<void> {
    const blob = await this.#ownBlob();
    const token = await this.#validToken();
    if (blob === undefined || token === undefined) return;
    // Raw, because the answer is cut on purpose: its head announces the blob's length, then the connection closes.
    const { target } = this.#next();
    const head = `GET /v2/${REPO}/blobs/${blob.digest} HTTP/1.1\r\nHost: ${this.ctx.hostHeader}\r\nUser-Agent: soak-hostile\r\nAuthorization: Bearer ${token}\r\nRange: bytes=${blob.size + 1024}-${blob.size + 2047}\r\n\r\n`;
    this.#count('Range past the end', await this.#raw(target, head));
  }

  /** Two Authorization headers: which one counts is each reader's choice, so harbor-lb answers 400. */
  async #twoAuthorizations(round: number): Promise<void> {
    const token = (await this.#validToken()) ?? 'e30.e30.';
    const { target } = this.#next();
    const path = round % 2 === 0 ? '/v2/' : `/service/token?service=harbor-registry&scope=repository:${REPO}:pull`;
    const head = `GET ${path} HTTP/1.1\r\nHost: ${this.ctx.hostHeader}\r\nUser-Agent: soak-hostile\r\nAuthorization: Bearer ${token}\r\nAuthorization: ${BASIC}\r\n\r\n`;
    this.#count('two Authorization', await this.#raw(target, head));
  }

  /** A session nobody opened: the node never vouched for it, so nothing may be pinned (or evicted) for it. */
  async #madeUpSid(round: number): Promise<void> {
    const path = UI_PATHS[round % UI_PATHS.length]!;
    const r = await this.#ask('GET', path, { cookie: `sid=${randomBytes(16).toString('hex')}` });
    this.#count('made-up sid', r.outcome);
  }

  /** Two different sid values on one request: ambiguous, harbor-lb answers 400. */
  async #twoSids(round: number): Promise<void> {
    const { target } = this.#next();
    const a = randomBytes(16).toString('hex');
    const b = randomBytes(16).toString('hex');
    const cookies = round % 2 === 0 ? `Cookie: sid=${a}; sid=${b}\r\n` : `Cookie: sid=${a}\r\nCookie: sid=${b}\r\n`;
    const head = `GET /harbor/projects HTTP/1.1\r\nHost: ${this.ctx.hostHeader}\r\nUser-Agent: soak-hostile\r\n${cookies}\r\n`;
    this.#count('two sid values', await this.#raw(target, head));
  }

  /**
   * A pull read slowly: the answer is read, then left unread for 4 s, three times (after the first
   * bytes, then after each further MiB), then read to its end and checked against its digest.
   * Resolves undefined when the run ended under it.
   */
  #slowRead(target: Target, blob: { digest: string; size: number }, token: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      let done = false;
      let pauseTimer: NodeJS.Timeout | undefined;
      const finish = (outcome: string | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(bound);
        clearTimeout(pauseTimer);
        this.stop.removeEventListener('abort', onStop);
        req.destroy();
        resolve(outcome);
      };
      const req = http.request(
        {
          host: '127.0.0.1',
          port: target.port,
          method: 'GET',
          path: `/v2/${REPO}/blobs/${blob.digest}`,
          headers: { host: this.ctx.hostHeader, 'user-agent': 'soak-hostile (slow reader)', authorization: `Bearer ${token}` },
          agent: false,
          localAddress: HOSTILE_ADDRESS,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const hash = createHash('sha256');
          let got = 0;
          let pauses = 0;
          let pauseAt = SLOW_READ.firstAfter;
          res.on('data', (c: Buffer) => {
            hash.update(c);
            got += c.length;
            if (status === 200 && pauses < SLOW_READ.pauses && got >= pauseAt) {
              pauses++;
              pauseAt = got + SLOW_READ.thenEvery;
              res.pause();
              pauseTimer = setTimeout(() => res.resume(), SLOW_READ.pauseMs);
            }
          });
          res.on('end', () => {
            if (status !== 200) return finish(`HTTP ${status}`);
            const intact = got === blob.size && `sha256:${hash.digest('hex')}` === blob.digest;
            finish(intact ? `HTTP 200, read whole after ${pauses} pauses, digest ok` : `HTTP 200 but ${got} of ${blob.size} bytes or a wrong digest`);
          });
          res.on('aborted', () => finish(`HTTP ${status}, cut after ${pauses} pauses`));
          res.on('error', () => finish(`HTTP ${status}, cut after ${pauses} pauses`));
          res.on('close', () => finish(`HTTP ${status}, cut after ${pauses} pauses`));
        },
      );
      const bound = setTimeout(() => finish('no complete answer within 90 s'), 90_000);
      const onStop = () => finish(undefined);
      this.stop.addEventListener('abort', onStop, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => finish(`no complete answer: ${err.code ?? err.message}`));
      req.end();
    });
  }

  // ---- what the shapes need ----------------------------------------------------------------

  /** A valid token with pull and push on the hostile client's repository, fetched again now and then. */
  #validToken(): Promise<string | undefined> {
    if (this.#token !== undefined && Date.now() - this.#token.at < TOKEN_TTL_MS) return Promise.resolve(this.#token.value);
    this.#tokenFetch ??= (async () => {
      try {
        const q = new URLSearchParams({ service: 'harbor-registry', scope: `repository:${REPO}:pull,push` });
        const r = await this.#ask('GET', `/service/token?${q.toString()}`, { authorization: BASIC });
        const token = r.reply?.status === 200 ? (parseJson(r.reply.body) as { token?: unknown } | undefined)?.token : undefined;
        this.ctx.hostileSetup.add(`token: ${r.outcome}`);
        if (typeof token !== 'string') return undefined;
        this.#token = { value: token, at: Date.now() };
        return token;
      } finally {
        this.#tokenFetch = undefined;
      }
    })();
    return this.#tokenFetch;
  }

  /** Its own blob (POST, one PATCH, PUT), pushed once; a failed push is tried again after 5 s. */
  #ownBlob(): Promise<{ digest: string; size: number } | undefined> {
    if (this.#blob !== undefined) return Promise.resolve(this.#blob);
    if (this.#blobPush === undefined && Date.now() - this.#blobTriedAt < 5000) return Promise.resolve(undefined);
    this.#blobPush ??= (async () => {
      this.#blobTriedAt = Date.now();
      try {
        const token = await this.#validToken();
        if (token === undefined) return undefined;
        const data = randomBytes(BLOB_SIZE);
        const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        const auth = { authorization: `Bearer ${token}` };
        const post = await this.#ask('POST', `/v2/${REPO}/blobs/uploads/`, auth);
        if (post.reply?.status !== 202) return this.#pushFailed('POST', post.outcome);
        const patch = await this.#ask('PATCH', this.#location(post.reply), { ...auth, 'content-type': 'application/octet-stream', 'content-length': data.length }, data, 120_000);
        if (patch.reply?.status !== 202) return this.#pushFailed('PATCH', patch.outcome);
        const path = this.#location(patch.reply);
        const put = await this.#ask('PUT', `${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, { ...auth, 'content-length': 0 });
        if (put.reply?.status !== 201) return this.#pushFailed('PUT', put.outcome);
        this.ctx.hostileSetup.add('own blob pushed (4 MiB)');
        this.#blob = { digest, size: data.length };
        return this.#blob;
      } finally {
        this.#blobPush = undefined;
      }
    })();
    return this.#blobPush;
  }

  #pushFailed(step: string, outcome: string): undefined {
    this.ctx.hostileSetup.add(`own blob push failed at ${step}: ${outcome}`);
    return undefined;
  }

  #location(r: Reply): string {
    const loc = new URL(String(r.headers.location ?? ''), this.ctx.publicUrl);
    return `${loc.pathname}${loc.search}`;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  #count(shape: HostileShape, outcome: string | undefined): void {
    if (outcome !== undefined) this.ctx.hostileAnswer(shape, outcome);
  }

  /** The instances in turn, as a client behind DNS round robin reaches them. */
  #next(): { target: Target; agent: http.Agent } {
    const i = this.#turn++ % this.ctx.targets.length;
    return { target: this.ctx.targets[i]!, agent: this.#agents[i]! };
  }

  /** One request over node:http; its outcome as counted ("HTTP 401 UNAUTHORIZED", "no complete answer: ECONNRESET"). Throws Aborted when the run ends. */
  async #ask(method: string, path: string, headers: http.OutgoingHttpHeaders, body?: Buffer, timeoutMs = TIMEOUT_MS): Promise<{ reply?: Reply; outcome: string }> {
    const { target, agent } = this.#next();
    try {
      const reply = await request({
        port: target.port,
        method,
        path,
        headers: { host: this.ctx.hostHeader, 'user-agent': 'soak-hostile', ...headers },
        body,
        agent,
        localAddress: HOSTILE_ADDRESS,
        timeoutMs,
        signal: this.stop,
        maxBody: 8 * 1024 * 1024,
      });
      return { reply, outcome: `HTTP ${reply.status}${errorCode(reply.body.toString('utf8'))}` };
    } catch (err) {
      if (err instanceof TransportError) return { outcome: `no complete answer: ${err.code}` };
      throw err;
    }
  }

  /**
   * One request written as raw bytes (latin1) on its own connection: its outcome once the answer
   * is complete (Content-Length or chunked end) or the server closed (", body cut short" when the
   * head announced more); undefined when the run ended.
   */
  #raw(target: Target, head: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      if (this.stop.aborted) return resolve(undefined);
      const socket = net.connect({ port: target.port, host: '127.0.0.1', localAddress: HOSTILE_ADDRESS });
      let answer = '';
      /** Bytes received in all (`answer` keeps the first 64 KiB). */
      let received = 0;
      let done = false;
      const finish = (outcome: string | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.stop.removeEventListener('abort', onStop);
        socket.destroy();
        resolve(outcome);
      };
      const outcome = () => {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
        return status === undefined ? undefined : `HTTP ${status}${errorCode(answer)}`;
      };
      const timer = setTimeout(() => finish(outcome() === undefined ? `no answer within ${TIMEOUT_MS / 1000} s` : `${outcome()} (answer not complete within ${TIMEOUT_MS / 1000} s)`), TIMEOUT_MS);
      const onStop = () => finish(undefined);
      this.stop.addEventListener('abort', onStop, { once: true });
      socket.on('connect', () => socket.write(Buffer.from(head, 'latin1')));
      socket.on('data', (c: Buffer) => {
        received += c.length;
        if (answer.length < 65_536) answer += c.toString('latin1');
        const end = answer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headText = answer.slice(0, end);
        const body = answer.slice(end + 4);
        const len = /\r\ncontent-length: *(\d+)/i.exec(headText);
        if (len && received - end - 4 >= Number(len[1])) return finish(outcome());
        if (/\r\ntransfer-encoding: *chunked/i.test(headText) && (body.startsWith('0\r\n\r\n') || body.includes('\r\n0\r\n\r\n'))) return finish(outcome());
      });
      // The server closed (or reset) before the answer was complete.
      const closed = (without: string) => {
        const o = outcome();
        if (o === undefined) return finish(without);
        // A head that announced more body than came: the answer was cut (a 416 for a range past the end is, by the registry).
        const end = answer.indexOf('\r\n\r\n');
        const len = end < 0 ? null : /\r\ncontent-length: *(\d+)/i.exec(answer.slice(0, end));
        finish(end < 0 ? `${o}, head cut short` : len && received - end - 4 < Number(len[1]) ? `${o}, body cut short` : o);
      };
      socket.on('error', (err: NodeJS.ErrnoException) => closed(`socket error ${err.code ?? err.message}`));
      socket.on('close', () => closed('closed without an answer'));
    });
  }
}

/** " CODE" of a registry error body (`{"errors":[{"code":"…"}]}`), or "". */
function errorCode(text: string): string {
  const code = /"code":\s*"([A-Z_]+)"/.exec(text)?.[1];
  return code === undefined ? '' : ` ${code}`;
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
