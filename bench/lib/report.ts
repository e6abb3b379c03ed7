/** The Markdown report of a bench run: machine facts, one table per measure, ratios to haproxy, targets. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { run } from './procs.js';
import { summarize, type Metric, type NumericField, type Sample } from './stats.js';

export interface Contender {
  id: string;
  label: string;
}

export interface Facts {
  date: string;
  finished?: string;
  command: string;
  commit: string;
  nproc: number;
  cpuModel: string;
  memory: string;
  kernel: string;
  node: string;
  haproxy: string;
  nginx: string;
  redis: string;
  wrk: string;
  curl: string;
  loadStart: string;
  loadEnd?: string;
  soakStart: boolean;
  soakEnd?: boolean;
}

const firstLine = (s: string) => s.split('\n').find((l) => l.trim() !== '')?.trim() ?? '?';

export async function machineFacts(root: string, args: string[]): Promise<Facts> {
  const out = async (cmd: string, a: string[], re?: RegExp) => {
    try {
      const r = await run(cmd, a, 10_000);
      const text = firstLine(r.stdout + '\n' + r.stderr);
      const m = re?.exec(text);
      return m ? m[1]! : text;
    } catch {
      return 'not found';
    }
  };
  let cpuModel = cpus()[0]?.model ?? '?';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    // not Linux
  }
  const commit = await out('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = (await run('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], 10_000).catch(() => ({ stdout: '' }))).stdout.trim() !== '';
  const soak = await run('pgrep', ['-f', 'soak'], 5000);
  return {
    date: new Date().toISOString(),
    command: ['npm run bench', ...(args.length > 0 ? ['--', ...args] : [])].join(' '),
    commit: `${commit}${dirty ? ' (with uncommitted changes)' : ''}`,
    nproc: Number(await out('nproc', [])) || cpus().length,
    cpuModel,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: release(),
    node: process.version,
    haproxy: await out('haproxy', ['-v'], /version (\S+)/),
    nginx: await out('nginx', ['-v'], /nginx\/(\S+)/),
    redis: await out('redis-server', ['--version'], /v=(\S+)/),
    wrk: await out('wrk', ['-v'], /wrk (\S+)/),
    curl: await out('curl', ['--version'], /curl (\S+)/),
    loadStart: loadavg().map((x) => x.toFixed(2)).join(' '),
    soakStart: soak.stdout.split('\n').some((p) => p !== '' && Number(p) !== process.pid),
  };
}

export interface ReportInput {
  settings: { quick: boolean; rounds: number; m1Seconds: number; m4Seconds: number; m5Seconds: number; blobsPerRun: number };
  facts: Facts;
  samples: Sample[];
  contenders: Contender[];
  rssStartMiB: Map<string, number>;
  hwmMiB: Map<string, number>;
  routingLines: number;
  lbRequests: number;
  /** The default harbor-lb's processes (control plane first, then its workers): idle RSS after start, peak over the run. */
  lbProcesses: Array<{ pid: number; idleMiB: number; hwmMiB: number }>;
  /** The cores the machine gives this process: harbor-lb's default workers and haproxy's threads. */
  cores: number;
  crashed: string[];
  jsonl: string;
}

const int = (x: number | undefined) => (x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const fix = (x: number | undefined, d = 2) => (x === undefined ? '–' : x.toFixed(d));
const times = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(2)}x`);
/** A ratio held against its target's bound: to 3 decimals where 2 would show the bound itself (0.4954 is "0.50x", and not ≥ 0.5). */
const against = (x: number | undefined, bound: number) => (x !== undefined && x !== bound && x.toFixed(2) === bound.toFixed(2) ? `${x.toFixed(3)}x` : times(x));
const div = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);

export function renderReport(input: ReportInput): string {
  const { samples, facts, settings } = input;
  const label = new Map(input.contenders.map((c) => [c.id, c.label]));
  const name = (id: string) => label.get(id) ?? id;
  const sum = (metric: Metric, variant: string, id: string) => summarize(samples, metric, variant, id);
  const med = (metric: Metric, variant: string, id: string, f: NumericField) => sum(metric, variant, id)?.median[f];
  /** harbor-lb's figure over haproxy's in each round (undefined where either has no good sample). */
  const perRound = (metric: Metric, variant: string, f: NumericField) =>
    Array.from({ length: settings.rounds }, (_, k) => {
      const get = (id: string) => samples.find((x) => x.metric === metric && x.variant === variant && x.contender === id && x.round === k && x.ok)?.[f];
      return div(get('harbor-lb'), get('haproxy'));
    });
  const range = (metric: Metric, variant: string, id: string, f: NumericField, d = 0) => {
    const s = sum(metric, variant, id);
    if (!s || s.n < 2 || s.min[f] === undefined) return '';
    return ` <sub>${d === 0 ? int(s.min[f]) : fix(s.min[f], d)}–${d === 0 ? int(s.max[f]) : fix(s.max[f], d)}</sub>`;
  };
  const failedNote = (metric: Metric, variant: string, id: string) => {
    const s = sum(metric, variant, id);
    return s && s.failed > 0 ? ` (${s.failed} failed)` : '';
  };
  const ids = (metric: Metric) => input.contenders.map((c) => c.id).filter((id) => samples.some((s) => s.metric === metric && s.contender === id));
  const rss = (metric: Metric, variant: string, id: string) => {
    const s = sum(metric, variant, id);
    return s?.median.rssPeakMiB === undefined ? '–' : `${fix(s.median.rssBeforeMiB, 0)} → ${fix(s.max.rssPeakMiB, 0)}`;
  };
  const lines: string[] = [];
  const p = (...xs: string[]) => lines.push(...xs);

  p(
    `### Run of ${facts.date.slice(0, 10)}${settings.quick ? ' (quick smoke run: one short round, not for publishing)' : ''}`,
    '',
    `- Command: \`${facts.command}\` at commit ${facts.commit}; started ${facts.date}, finished ${facts.finished ?? '?'}`,
    `- Machine: ${facts.nproc} cores (\`nproc\`), ${facts.cpuModel}, ${facts.memory} memory, Linux ${facts.kernel}`,
    `- Software: Node.js ${facts.node}, haproxy ${facts.haproxy}, nginx ${facts.nginx}, redis ${facts.redis}, wrk ${facts.wrk}, curl ${facts.curl}`,
    `- Load average (1, 5, 15 min) at start ${facts.loadStart}, at end ${facts.loadEnd ?? '?'}; a \`soak\` process running at start: ${facts.soakStart ? 'yes' : 'no'}, at end: ${facts.soakEnd ? 'yes' : 'no'}`,
    `- ${settings.rounds} round(s), contenders interleaved, order rotated each round, each contender's first load on each path an unrecorded warm-up; figures are medians over the rounds, small figures below them the range; ratios are to haproxy's median. Raw samples: \`${input.jsonl}\` (not committed).`,
    '',
  );

  // M1
  p(
    `#### M1: small GETs (2 KiB manifest, wrk 2 threads, 64 connections, ${settings.m1Seconds} s per sample)`,
    '',
    '| contender | req/s | × haproxy | p50 ms | p99 ms | p99 × haproxy | proxy CPU µs/req | × haproxy | RSS MiB (before → peak) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const M1 = (id: string, f: NumericField) => med('M1', 'small GET', id, f);
  for (const id of ids('M1')) {
    p(
      `| ${name(id)}${failedNote('M1', 'small GET', id)} | ${int(M1(id, 'reqPerS'))}${range('M1', 'small GET', id, 'reqPerS')} | ${times(div(M1(id, 'reqPerS'), M1('haproxy', 'reqPerS')))} | ${fix(M1(id, 'p50Ms'))} | ${fix(M1(id, 'p99Ms'))} | ${times(div(M1(id, 'p99Ms'), M1('haproxy', 'p99Ms')))} | ${fix(M1(id, 'cpuUsPerReq'), 1)} | ${times(div(M1(id, 'cpuUsPerReq'), M1('haproxy', 'cpuUsPerReq')))} | ${rss('M1', 'small GET', id)} |`,
    );
  }
  p('');

  // M2, M3
  for (const [metric, title] of [
    ['M2', 'M2: blob pull (64 MiB GETs, curl, one keep-alive connection per stream)'],
    ['M3', 'M3: blob push (64 MiB PUTs to upload URLs, curl, the backend answers 201 after reading the whole body)'],
  ] as const) {
    p(
      `#### ${title}, ${settings.blobsPerRun} blobs (${(settings.blobsPerRun * 64) / 1024} GiB) per sample`,
      '',
      '| contender | 1 stream MiB/s | × haproxy | 4 streams MiB/s | × haproxy | proxy CPU s/GiB (1 / 4 streams) | × haproxy (4) | minor page faults per GiB (1 / 4 streams) | RSS MiB, 4 streams (before → peak) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    const v = (id: string, variant: string, f: NumericField) => med(metric, variant, id, f);
    for (const id of ids(metric)) {
      p(
        `| ${name(id)}${failedNote(metric, '1 stream', id)}${failedNote(metric, '4 streams', id)} | ${int(v(id, '1 stream', 'mibPerS'))}${range(metric, '1 stream', id, 'mibPerS')} | ${times(div(v(id, '1 stream', 'mibPerS'), v('haproxy', '1 stream', 'mibPerS')))} | ${int(v(id, '4 streams', 'mibPerS'))}${range(metric, '4 streams', id, 'mibPerS')} | ${times(div(v(id, '4 streams', 'mibPerS'), v('haproxy', '4 streams', 'mibPerS')))} | ${fix(v(id, '1 stream', 'cpuSPerGiB'))} / ${fix(v(id, '4 streams', 'cpuSPerGiB'))} | ${times(div(v(id, '4 streams', 'cpuSPerGiB'), v('haproxy', '4 streams', 'cpuSPerGiB')))} | ${int(v(id, '1 stream', 'faultsPerGiB'))} / ${int(v(id, '4 streams', 'faultsPerGiB'))} | ${rss(metric, '4 streams', id)} |`,
      );
    }
    p('');
  }

  // M4
  const M4 = (id: string, f: NumericField) => med('M4', 'token', id, f);
  p(
    `#### M4: the token path (GET /service/token, the backends serve one static signed token; wrk 64 connections, ${settings.m4Seconds} s per sample)`,
    '',
    '| contender | req/s | × haproxy | p50 ms | p99 ms | proxy CPU µs/req | × haproxy |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const id of ids('M4')) {
    p(
      `| ${name(id)}${id === 'harbor-lb' ? ' (verification on)' : ''}${failedNote('M4', 'token', id)} | ${int(M4(id, 'reqPerS'))}${range('M4', 'token', id, 'reqPerS')} | ${times(div(M4(id, 'reqPerS'), M4('haproxy', 'reqPerS')))} | ${fix(M4(id, 'p50Ms'))} | ${fix(M4(id, 'p99Ms'))} | ${fix(M4(id, 'cpuUsPerReq'), 1)} | ${times(div(M4(id, 'cpuUsPerReq'), M4('haproxy', 'cpuUsPerReq')))} |`,
    );
  }
  p('');

  // M5
  const M5 = (id: string, f: NumericField) => med('M5', 'small GET', id, f);
  p(
    `#### M5: the sticky store, Redis against memory (M1's load, ${settings.m5Seconds} s per sample, the two alternating)`,
    '',
    '| contender | req/s | × memory | × haproxy (M1) | p50 ms | p99 ms | CPU µs/req (harbor-lb + redis-server) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const id of ids('M5')) {
    p(
      `| ${name(id)}${id === 'harbor-lb' ? ', sticky.store: memory' : ''}${failedNote('M5', 'small GET', id)} | ${int(M5(id, 'reqPerS'))}${range('M5', 'small GET', id, 'reqPerS')} | ${times(div(M5(id, 'reqPerS'), M5('harbor-lb', 'reqPerS')))} | ${times(div(M5(id, 'reqPerS'), M1('haproxy', 'reqPerS')))} | ${fix(M5(id, 'p50Ms'))} | ${fix(M5(id, 'p99Ms'))} | ${fix(M5(id, 'cpuUsPerReq'), 1)} |`,
    );
  }
  p('');

  // M6
  const M6 = (id: string, f: NumericField) => med('M6', 'new connection', id, f);
  if (ids('M6').length > 0) {
    p(
      `#### M6: a new connection per request (M1's GET with \`Connection: close\`; wrk 64 connections, ${settings.m4Seconds} s per sample). What the control plane handing each connection to a worker (\`proxy.connectionBalance: least-connections\`, the default) costs against each worker accepting its own (\`kernel\`)`,
      '',
      '| contender | req/s (= connections/s) | × haproxy | p50 ms | p99 ms | proxy CPU µs/req | × haproxy |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const id of ids('M6')) {
      p(
        `| ${name(id)}${failedNote('M6', 'new connection', id)} | ${int(M6(id, 'reqPerS'))}${range('M6', 'new connection', id, 'reqPerS')} | ${times(div(M6(id, 'reqPerS'), M6('haproxy', 'reqPerS')))} | ${fix(M6(id, 'p50Ms'))} | ${fix(M6(id, 'p99Ms'))} | ${fix(M6(id, 'cpuUsPerReq'), 1)} | ${times(div(M6(id, 'cpuUsPerReq'), M6('haproxy', 'cpuUsPerReq')))} |`,
      );
    }
    p('');
  }

  // The ceiling
  for (const [metric, what] of [['M2', 'pulled'], ['M3', 'pushed']] as const) {
    const g4 = (id: string) => med(metric, '4 streams', id, 'cpuSPerGiB');
    const g1 = (id: string) => med(metric, '1 stream', id, 'cpuSPerGiB');
    if (g4('node-relay') === undefined) continue;
    p(
      `#### The ceiling: CPU per GiB ${what} (${metric})`,
      '',
      '| process | CPU s/GiB, 1 stream | CPU s/GiB, 4 streams | × haproxy (4) | × bare Node relay (4) |',
      '|---|---:|---:|---:|---:|',
    );
    for (const id of ['haproxy', 'nginx', 'node-relay', 'undici-blobs', 'harbor-lb', 'harbor-lb-1w']) {
      if (g4(id) === undefined) continue;
      p(`| ${name(id)} | ${fix(g1(id))} | ${fix(g4(id))} | ${times(div(g4(id), g4('haproxy')))} | ${times(div(g4(id), g4('node-relay')))} |`);
    }
    p('');
  }

  // Pulls round by round
  if (settings.rounds > 1) {
    const rounds = Array.from({ length: settings.rounds }, (_, r) => r);
    p(
      '#### Pulls round by round (M2, 4 streams: MiB/s, proxy CPU s/GiB). Round 1 ran before any small-request load; rounds 2+ after the previous round\'s M1, M4 and M5 bursts',
      '',
      `| contender | ${rounds.map((r) => `round ${r + 1}`).join(' | ')} |`,
      `|---|${rounds.map(() => '---:').join('|')}|`,
    );
    for (const id of ids('M2')) {
      const cells = rounds.map((r) => {
        const s = samples.find((x) => x.metric === 'M2' && x.variant === '4 streams' && x.contender === id && x.round === r);
        if (!s) return '–';
        if (!s.ok) return 'failed';
        return `${int(s.mibPerS)}${s.cpuSPerGiB !== undefined ? ` (${fix(s.cpuSPerGiB)})` : ''}`;
      });
      p(`| ${name(id)} | ${cells.join(' | ')} |`);
    }
    p(`| harbor-lb × haproxy | ${perRound('M2', '4 streams', 'mibPerS').map(times).join(' | ')} |`, '');
  }

  // hey
  if (samples.some((s) => s.metric === 'hey')) {
    const H = (id: string, f: NumericField) => med('hey', 'small GET', id, f);
    p('#### Second opinion on M1 with hey (Go client, 64 connections, one sample each)', '', '| contender | req/s | × haproxy | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|');
    for (const id of ids('hey')) p(`| ${name(id)} | ${int(H(id, 'reqPerS'))} | ${times(div(H(id, 'reqPerS'), H('haproxy', 'reqPerS')))} | ${fix(H(id, 'p50Ms'))} | ${fix(H(id, 'p99Ms'))} |`);
    p('');
  }

  // Targets (issue 11)
  const r = (metric: Metric, variant: string, f: NumericField) => div(med(metric, variant, 'harbor-lb', f), med(metric, variant, 'haproxy', f));
  const worstPull = Math.min(...perRound('M2', '4 streams', 'mibPerS').map((x) => x ?? Infinity));
  const lbSamples = samples.filter((s) => s.contender === 'harbor-lb' && s.ok && s.rssPeakMiB !== undefined);
  const rssGrowth = lbSamples.length === 0 ? undefined : Math.max(...lbSamples.map((s) => s.rssPeakMiB!)) - (input.rssStartMiB.get('harbor-lb') ?? 0);
  const check = (ok: boolean | undefined) => (ok === undefined ? '–' : ok ? 'met' : '**not met**');
  /** harbor-lb's small-GET rate over haproxy's, round by round: how far the rounds' own swing reaches. */
  const m1Rounds = perRound('M1', 'small GET', 'reqPerS').filter((x): x is number => x !== undefined);
  const roundByRound = m1Rounds.length > 1 ? ` (round by round: ${m1Rounds.map(times).join(', ')})` : '';
  const m1 = r('M1', 'small GET', 'reqPerS');
  const p99 = r('M1', 'small GET', 'p99Ms');
  const m2 = r('M2', '4 streams', 'mibPerS');
  const m3 = r('M3', '4 streams', 'mibPerS');
  const cpuPull = r('M2', '4 streams', 'cpuSPerGiB');
  const cpuPush = r('M3', '4 streams', 'cpuSPerGiB');
  p(
    '#### harbor-lb against the targets of issue 11 (ratios to haproxy in this run)',
    '',
    '| target | measured | |',
    '|---|---:|---|',
    `| M1 ≥ 0.5x | ${against(m1, 0.5)} | ${check(m1 === undefined ? undefined : m1 >= 0.5)} |`,
    `| M1 p99 ≤ 2x haproxy's | ${against(p99, 2)} | ${check(p99 === undefined ? undefined : p99 <= 2)} |`,
    `| M2 (4 streams) ≥ 0.8x, whatever the process served before (median; worst round) | ${against(m2, 0.8)}; ${Number.isFinite(worstPull) ? against(worstPull, 0.8) : '–'} | ${check(m2 === undefined ? undefined : m2 >= 0.8 && worstPull >= 0.8)} |`,
    `| M3 (4 streams) ≥ 1.0x (1 stream: ${times(r('M3', '1 stream', 'mibPerS'))}) | ${against(m3, 1)} | ${check(m3 === undefined ? undefined : m3 >= 1)} |`,
    `| proxy CPU per GiB ≤ 1.25x haproxy's (pull; push, 4 streams) | ${against(cpuPull, 1.25)}; ${against(cpuPush, 1.25)} | ${check(cpuPull === undefined || cpuPush === undefined ? undefined : cpuPull <= 1.25 && cpuPush <= 1.25)} |`,
    `| RSS under load within 64 MiB of idle (idle ${fix(input.rssStartMiB.get('harbor-lb'), 0)} MiB at start) | +${fix(rssGrowth, 0)} MiB | ${check(rssGrowth === undefined ? undefined : rssGrowth <= 64)} |`,
    '',
  );

  // Cores (issue 20)
  const N = input.cores;
  const cell = (id: string, metric: Metric, variant: string, f: NumericField, d = 0) => (d === 0 ? int(med(metric, variant, id, f)) : fix(med(metric, variant, id, f), d));
  const ratio = (a: string, b: string, metric: Metric, variant: string, f: NumericField) => times(div(med(metric, variant, a, f), med(metric, variant, b, f)));
  const row = (label: string, id: string) =>
    `| ${label} | ${cell(id, 'M1', 'small GET', 'reqPerS')} | ${cell(id, 'M1', 'small GET', 'cpuUsPerReq', 1)} | ${cell(id, 'M2', '4 streams', 'mibPerS')} | ${cell(id, 'M2', '4 streams', 'cpuSPerGiB', 2)} | ${cell(id, 'M3', '4 streams', 'mibPerS')} | ${cell(id, 'M3', '4 streams', 'cpuSPerGiB', 2)} |`;
  const ratioRow = (label: string, a: string, b: string) =>
    `| ${label} | ${ratio(a, b, 'M1', 'small GET', 'reqPerS')} | ${ratio(a, b, 'M1', 'small GET', 'cpuUsPerReq')} | ${ratio(a, b, 'M2', '4 streams', 'mibPerS')} | ${ratio(a, b, 'M2', '4 streams', 'cpuSPerGiB')} | ${ratio(a, b, 'M3', '4 streams', 'mibPerS')} | ${ratio(a, b, 'M3', '4 streams', 'cpuSPerGiB')} |`;
  if (ids('M1').includes('harbor-lb-1w')) {
    p(
      `#### Cores: one request worker or thread, and ${N} (harbor-lb's default: the usable cores)`,
      '',
      'CPU is every process of the contender (harbor-lb: its control plane and workers). The load generators share the machine\'s cores.',
      '',
      '| contender | small GET req/s | CPU µs/req | pulls, 4 streams MiB/s | CPU s/GiB | pushes, 4 streams MiB/s | CPU s/GiB |',
      '|---|---:|---:|---:|---:|---:|---:|',
      row('haproxy, 1 thread', 'haproxy-1t'),
      row('harbor-lb, 1 worker', 'harbor-lb-1w'),
      ratioRow('harbor-lb × haproxy, 1', 'harbor-lb-1w', 'haproxy-1t'),
      row(`haproxy, ${N} threads`, 'haproxy'),
      row(`harbor-lb, ${N} workers`, 'harbor-lb'),
      ratioRow(`harbor-lb × haproxy, ${N}`, 'harbor-lb', 'haproxy'),
      ratioRow(`harbor-lb, ${N} workers × 1 worker`, 'harbor-lb', 'harbor-lb-1w'),
      '',
    );
  }
  const cpuVsUndici = div(med('M1', 'small GET', 'harbor-lb', 'cpuUsPerReq'), med('M1', 'small GET', 'undici-proxy', 'cpuUsPerReq'));
  const procs = input.lbProcesses;
  const growth = procs.length === 0 ? undefined : Math.max(...procs.map((x) => x.hwmMiB - x.idleMiB));
  const faults = med('M2', '4 streams', 'harbor-lb', 'faultsPerGiB');
  const faultsPush = med('M3', '4 streams', 'harbor-lb', 'faultsPerGiB');
  p(
    '#### harbor-lb against the targets of issue 20 (ratios within this run, default workers against haproxy with as many threads)',
    '',
    '| target | measured | |',
    '|---|---:|---|',
    `| small GETs ≥ 0.5x haproxy${roundByRound} | ${against(m1, 0.5)} | ${check(m1 === undefined ? undefined : m1 >= 0.5)} |`,
    `| CPU per small GET ≤ 1.2x the minimal undici proxy's (${fix(med('M1', 'small GET', 'undici-proxy', 'cpuUsPerReq'), 1)} µs) | ${against(cpuVsUndici, 1.2)} | ${check(cpuVsUndici === undefined ? undefined : cpuVsUndici <= 1.2)} |`,
    `| pulls and pushes, 4 streams, ≥ 1.0x haproxy | ${against(m2, 1)}; ${against(m3, 1)} | ${check(m2 === undefined || m3 === undefined ? undefined : m2 >= 1 && m3 >= 1)} |`,
    `| CPU per GiB ≤ 1.25x haproxy's (pull; push) | ${against(cpuPull, 1.25)}; ${against(cpuPush, 1.25)} | ${check(cpuPull === undefined || cpuPush === undefined ? undefined : cpuPull <= 1.25 && cpuPush <= 1.25)} |`,
    `| minor page faults per GiB under 2,000 (pull; push) | ${int(faults)}; ${int(faultsPush)} | ${check(faults === undefined || faultsPush === undefined ? undefined : faults < 2000 && faultsPush < 2000)} |`,
    `| each process's RSS under load within 64 MiB of its idle (${procs.map((x) => `${fix(x.idleMiB, 0)} → ${fix(x.hwmMiB, 0)}`).join(', ')} MiB) | +${fix(growth, 0)} MiB | ${check(growth === undefined ? undefined : growth <= 64)} |`,
    '',
  );

  // Bookkeeping
  const hwm = [...input.hwmMiB.entries()].map(([id, m]) => `${id} ${m.toFixed(0)}`).join(', ');
  const failed = samples.filter((s) => !s.ok);
  p(
    `- harbor-lb wrote ${int(input.routingLines)} routing lines for the ${int(input.lbRequests)} requests the load tools completed through it, checks and warm-ups included (wrk stops with up to 64 requests in flight per run, which are logged but not counted: a few more lines than requests is expected, fewer would mean lost lines).`,
    `- Peak resident memory over the whole run (VmHWM, MiB): ${hwm}.`,
    `- Failed measurements: ${failed.length === 0 ? 'none' : failed.map((s) => `${s.metric} ${s.variant} ${s.contender} round ${s.round + 1}: ${s.failure}`).join('; ')}.${input.crashed.length > 0 ? ` Exited during the run: ${input.crashed.join(', ')}.` : ''}`,
  );
  return lines.join('\n') + '\n';
}

/** Replaces the generated part of docs/benchmarks.md (`marker`: bench, or bench-scale for --scale), keeping what people wrote around it. */
export function writeDoc(path: string, report: string, marker = 'bench'): void {
  const BEGIN = `<!-- ${marker}:begin (written by npm run bench; edit outside these markers) -->`;
  const END = `<!-- ${marker}:end -->`;
  const block = `${BEGIN}\n${report}${END}`;
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8');
    const a = text.indexOf(BEGIN);
    const b = text.indexOf(END);
    if (a >= 0 && b > a) {
      writeFileSync(path, text.slice(0, a) + block + text.slice(b + END.length));
      return;
    }
    const heading = marker === 'bench' ? 'Latest run' : marker === 'bench-scale' ? 'Scaling with cores: latest run' : marker === 'bench-instructions' ? 'Instructions per small GET: latest run' : 'Coalescing: latest run';
    writeFileSync(path, `${text.trimEnd()}\n\n## ${heading}\n\n${block}\n`);
    return;
  }
  writeFileSync(path, `# Benchmarks\n\nRun with \`npm run bench\` (see bench/bench.ts).\n\n## Latest run\n\n${block}\n`);
}
