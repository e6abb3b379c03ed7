/**
 * Load generators, each bounded in time: wrk for small requests (C, an event loop per thread,
 * little CPU taken from the proxies it measures), curl for blobs (a fixed volume per stream over
 * one keep-alive connection; it reads in 16 KiB pieces where wrk reads 8 KiB, and costs less CPU per
 * GiB on this machine), hey (Go) as a second opinion on small requests.
 */
import { randomUUID } from 'node:crypto';
import { run } from './procs.js';

export interface WrkResult {
  durationUs: number;
  requests: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

/** wrk -t2 -cN -dS --latency, summary read from bench/wrk-json.lua. */
export async function wrk(url: string, opts: { threads: number; connections: number; seconds: number; script: string; cpus?: string; headers?: string[] }): Promise<WrkResult> {
  const args = [`-t${opts.threads}`, `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', ...(opts.headers ?? []).flatMap((h) => ['-H', h]), '-s', opts.script, url];
  // cpus: pinned (taskset) to those cores, away from the contender's.
  const r = opts.cpus === undefined ? await run('wrk', args, (opts.seconds + 30) * 1000) : await run('taskset', ['-c', opts.cpus, 'wrk', ...args], (opts.seconds + 30) * 1000);
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (r.code !== 0 || line === undefined) throw new Error(`wrk ${url} failed (exit ${r.code}): ${r.stderr || r.stdout}`.slice(0, 2000));
  return JSON.parse(line.slice('WRKJSON '.length)) as WrkResult;
}

export const wrkErrors = (r: WrkResult) => r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;

export interface BlobResult {
  wallS: number;
  bytes: number;
  transfers: number;
  /** Transfers that did not end as expected (status, size or curl's exit). */
  failures: string[];
}

/**
 * `streams` curl processes at once, each moving `perStream` blobs one after the other over one
 * keep-alive connection. Wall time from the start of the first to the end of the last.
 */
async function curlStreams(streams: number, argsFor: (stream: number) => string[], expect: (line: string) => string | undefined, perStream: number, timeoutS: number, cpus?: string): Promise<Omit<BlobResult, 'bytes'>> {
  const started = process.hrtime.bigint();
  const pin = cpus === undefined ? [] : ['taskset', '-c', cpus];
  const results = await Promise.all(
    Array.from({ length: streams }, (_, s) => {
      const args = ['-sS', '--max-time', String(timeoutS), ...argsFor(s)];
      return pin.length === 0 ? run('curl', args, (timeoutS + 10) * 1000) : run(pin[0]!, [...pin.slice(1), 'curl', ...args], (timeoutS + 10) * 1000);
    }),
  );
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const failures: string[] = [];
  results.forEach((r, s) => {
    if (r.code !== 0) failures.push(`stream ${s}: curl exit ${r.code} ${r.stderr.trim()}`);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    if (lines.length !== perStream) failures.push(`stream ${s}: ${lines.length} of ${perStream} transfers ended`);
    for (const l of lines) {
      const bad = expect(l);
      if (bad !== undefined) failures.push(`stream ${s}: ${bad}`);
    }
  });
  return { wallS, transfers: streams * perStream, failures: failures.slice(0, 10) };
}

/** GET `url` perStream times on each of `streams` connections; every answer must be 200 with `size` bytes. */
export async function pull(url: string, size: number, streams: number, perStream: number, timeoutS: number, cpus?: string, headers: string[] = []): Promise<BlobResult> {
  const r = await curlStreams(
    streams,
    () => [...headers.flatMap((h) => ['-H', h]), ...Array.from({ length: perStream }, () => ['-o', '/dev/null', '-w', '%{http_code} %{size_download}\\n', url]).flat()],
    (l) => (l === `200 ${size}` ? undefined : `got "${l}", expected "200 ${size}"`),
    perStream,
    timeoutS,
    cpus,
  );
  return { ...r, bytes: size * r.transfers };
}

/**
 * PUT `file` (`size` bytes) perStream times on each of `streams` connections, each to a new upload
 * id as a registry client would; every answer must be 201 after all bytes were sent. No
 * `Expect: 100-continue` (docker does not send it; curl would for bodies over 1 MiB).
 */
export async function push(base: string, pathFor: (uuid: string) => string, file: string, size: number, streams: number, perStream: number, timeoutS: number): Promise<BlobResult> {
  const r = await curlStreams(
    streams,
    () => [
      '-H',
      'Expect:',
      '-H',
      'Content-Type: application/octet-stream',
      ...Array.from({ length: perStream }, () => ['-T', file, '-o', '/dev/null', '-w', '%{http_code} %{size_upload}\\n', base + pathFor(randomUUID())]).flat(),
    ],
    (l) => (l === `201 ${size}` ? undefined : `got "${l}", expected "201 ${size}"`),
    perStream,
    timeoutS,
  );
  return { ...r, bytes: size * r.transfers };
}

export interface HeyResult {
  reqPerS: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  /** Answers counted in hey's status code distribution. */
  responses: number;
}

/** hey -z Ss -c N: requests/s and latency percentiles from its text summary. */
export async function hey(url: string, connections: number, seconds: number): Promise<HeyResult> {
  const r = await run('hey', ['-z', `${seconds}s`, '-c', String(connections), url], (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`hey ${url} failed (exit ${r.code}): ${r.stderr}`.slice(0, 2000));
  const num = (re: RegExp) => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`hey output without ${re}: ${r.stdout.slice(0, 1000)}`);
    return Number(m[1]);
  };
  const codes = [...r.stdout.matchAll(/\[(\d{3})\]\s+(\d+) responses/g)];
  return {
    reqPerS: num(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: num(/50%+ in ([\d.]+) secs/) * 1000,
    p99Ms: num(/99%+ in ([\d.]+) secs/) * 1000,
    non2xx: codes.filter((c) => !c[1]!.startsWith('2')).reduce((s, c) => s + Number(c[2]), 0),
    responses: codes.reduce((s, c) => s + Number(c[2]), 0),
  };
}
