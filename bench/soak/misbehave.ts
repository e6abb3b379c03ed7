import http from 'node:http';
import net from 'node:net';
import type { SoakContext, Target } from './context.js';
import { Aborted, request } from './http.js';
import { sleep } from './user.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;
const SLOW_ADDRESS = '127.0.0.2';
const DUP_HOST_ADDRESS = '127.0.0.3';

/**
 * A client uploading a layer at 1 byte/s: it starts an upload properly (token, POST), then sends a
 * PATCH announcing 10 MB and trickles it. harbor-lb should cut it (limits.minBodyRate) while
 * everyone else goes on; the client then starts again, until the run ends.
 */
export async function slowBodyClient(ctx: SoakContext, stop: AbortSignal): Promise<void> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    for (let i = 0; i < 1000 && !stop.aborted; i++) {
      const target = ctx.targets[i % ctx.targets.length]!;
      const start = await startUpload(ctx, target, agent, stop).catch((err: Error) => {
        if (!(err instanceof Aborted)) ctx.slowBody.add(`could not start the upload: ${err.message.slice(0, 80)}`);
        return undefined;
      });
      if (start === undefined) {
        await sleep(1000, stop).catch(() => undefined);
        continue;
      }
      const began = Date.now();
      const outcome = await trickle(ctx, target, start.path, start.token, stop);
      const afterS = Math.round((Date.now() - began) / 100) / 10;
      ctx.slowBody.add(outcome);
      if (outcome !== 'run ended') {
        ctx.slowBodyCuts.push({ t: ctx.t(), instance: target.name, afterS, outcome });
        ctx.emit('slow_body', { instance: target.name, afterS, outcome });
      }
    }
  } finally {
    agent.destroy();
  }
}

async function startUpload(ctx: SoakContext, target: Target, agent: http.Agent, signal: AbortSignal): Promise<{ path: string; token: string }> {
  const repo = 'library/soak-slow';
  const base = { port: target.port, agent, localAddress: SLOW_ADDRESS, timeoutMs: 30_000, signal };
  const q = new URLSearchParams({ service: 'harbor-registry', scope: `repository:${repo}:pull,push` });
  const t = await request({ ...base, method: 'GET', path: `/service/token?${q.toString()}`, headers: { host: ctx.hostHeader, authorization: BASIC } });
  if (t.status !== 200) throw new Error(`token: HTTP ${t.status}`);
  const token = (JSON.parse(t.body.toString()) as { token: string }).token;
  const p = await request({ ...base, method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: { host: ctx.hostHeader, authorization: `Bearer ${token}` } });
  if (p.status !== 202 || p.headers.location === undefined) throw new Error(`POST: HTTP ${p.status}`);
  const loc = new URL(p.headers.location, ctx.publicUrl);
  return { path: `${loc.pathname}${loc.search}`, token };
}

/** One trickled PATCH on a raw socket; resolves with what ended it. Bounded at 10 minutes. */
function trickle(ctx: SoakContext, target: Target, path: string, token: string, stop: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port: target.port, host: '127.0.0.1', localAddress: SLOW_ADDRESS });
    let answer = '';
    let done = false;
    const finish = (outcome: string) => {
      if (done) return;
      done = true;
      clearInterval(drip);
      clearTimeout(bound);
      stop.removeEventListener('abort', onStop);
      socket.destroy();
      resolve(outcome);
    };
    const status = () => /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
    socket.on('connect', () => {
      socket.write(
        `PATCH ${path} HTTP/1.1\r\nHost: ${ctx.hostHeader}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n`,
      );
    });
    const drip = setInterval(() => {
      if (socket.writable) socket.write('x');
    }, 1000);
    const bound = setTimeout(() => finish('still open after 600 s'), 600_000);
    const onStop = () => finish('run ended');
    stop.addEventListener('abort', onStop, { once: true });
    socket.on('data', (c: Buffer) => {
      answer += c.toString('latin1');
      if (answer.length > 4096) answer = answer.slice(0, 4096);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const s = status();
      const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1];
      finish(s === undefined ? 'closed without an answer' : `HTTP ${s}${code ? ` ${code}` : ''}`);
    });
  });
}

/**
 * Now and then a burst of raw requests with two Host headers, each on its own connection, to each
 * instance in turn. harbor-lb should answer 400 and charge nobody.
 */
export async function duplicateHostClient(ctx: SoakContext, stop: AbortSignal, everyMs: number, burst = 10): Promise<void> {
  for (let round = 0; round < 10_000 && !stop.aborted; round++) {
    await sleep(everyMs, stop).catch(() => undefined);
    if (stop.aborted) break;
    const target = ctx.targets[round % ctx.targets.length]!;
    const answers = await Promise.all(Array.from({ length: burst }, () => duplicateHost(ctx, target)));
    for (const a of answers) ctx.duplicateHost.add(a);
  }
}

function duplicateHost(ctx: SoakContext, target: Target): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port: target.port, host: '127.0.0.1', localAddress: DUP_HOST_ADDRESS });
    let answer = '';
    let done = false;
    const finish = (outcome: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(/^HTTP\/1\.1 (\d{3})/.exec(answer) ? `HTTP ${/^HTTP\/1\.1 (\d{3})/.exec(answer)![1]} (connection left open)` : 'no answer within 10 s'), 10_000);
    socket.on('connect', () => socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${ctx.hostHeader}\r\nHost: evil.example\r\nUser-Agent: soak-duplicate-host\r\n\r\n`));
    socket.on('data', (c: Buffer) => {
      answer += c.toString('latin1');
      // The whole answer is in once its body is (Content-Length) or the server closes.
      const head = answer.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(answer);
      if (head >= 0 && len && answer.length >= head + 4 + Number(len[1])) {
        const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1];
        finish(`HTTP ${/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? '?'}${code ? ` ${code}` : ''}`);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`socket error ${err.code ?? err.message}`));
    socket.on('close', () => {
      const s = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
      const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1];
      finish(s === undefined ? 'closed without an answer' : `HTTP ${s}${code ? ` ${code}` : ''}`);
    });
  });
}
