import type { InstanceSample, Sample } from './sampler.js';
import { IDLE_FD_SLACK, type SoakResult } from './run.js';
import { ROUTES } from './stats.js';
import { HOSTILE_ADDRESS, HOSTILE_EVERY_MS, HOSTILE_SHAPES } from './hostile.js';

/** Under load, the fds at the end of the run may exceed the largest count of the second quarter by this many. */
export const LOAD_FD_SLACK = 16;
/** RSS in the last quarter may exceed the second quarter's largest by this factor plus this many MiB. */
export const RSS_FACTOR = 1.2;
export const RSS_SLACK_MIB = 8;
/** A node a fault hits may go unhealthy (or quarantined) from the fault's start until this long after its end: checks, then the state change. */
export const FAULT_MARGIN_S = 5;
/** The states that take a node out of the path: client traffic must never put a node there. */
const CONVICTED_STATES = new Set(['unhealthy', 'quarantined']);

/** A flag raised or a state change into a convicted state, as one instance logged it. */
export interface NodeEvent {
  instance: string;
  t: number;
  node: string;
  /** "flag CODE" or "unhealthy: why". */
  what: string;
}

/** The figures of "client traffic convicted no node". */
export interface ConvictionCheck {
  /** Where a node's own fault lets it go unhealthy: [fromS, toS] (the margin included). */
  windows: Array<{ fault: string; node: string; fromS: number; toS: number }>;
  /** Flags raised before any client sent anything (harbor-lb's first probe of the cluster): shown, not held against the rule. */
  flagsBefore: NodeEvent[];
  /** Flags raised once the traffic had started: each one fails the target. */
  flagsDuring: NodeEvent[];
  /** Nodes gone unhealthy or quarantined within their own fault's window: expected. */
  inWindow: NodeEvent[];
  /** Nodes gone unhealthy or quarantined anywhere else: each one fails the target. */
  outside: NodeEvent[];
  /** node_suspected lines per instance, by cause, and the suspicions those lines held back. */
  suspected: Array<{ instance: string; lines: Record<string, number>; notLogged: Record<string, number> }>;
}

export interface Verdict {
  noUnretryable: boolean;
  rssFlat: boolean;
  fdsFlat: boolean;
  faultsRan: boolean;
  /** No flag raised during the traffic, no node unhealthy or quarantined outside its own fault's window. */
  noConviction: boolean;
  conviction: ConvictionCheck;
  pass: boolean;
  rss: Array<{ name: string; q2MaxKb: number; q4MaxKb: number; slopeMiBPerMin: number; ok: boolean }>;
  fds: Array<{ name: string; idleBefore: number; idleAfter: number; q2Max: number; q4Max: number; ok: boolean }>;
}

/** The targets: no error a client could not retry; RSS and fds flat (the last quarter no higher than the second, idle fds back where they were). */
export function verdict(r: SoakResult): Verdict {
  const d = r.options.durationMs / 1000;
  const inQuarter = (s: Sample, q: number) => s.t > ((q - 1) * d) / 4 && s.t <= (q * d) / 4 + 1;
  const names = r.idleBefore.map((s) => s.name);
  const series = (name: string, pick: (x: InstanceSample) => number | undefined, q: number) =>
    r.samples.filter((s) => inQuarter(s, q)).map((s) => pick(s.instances.find((x) => x.name === name)!) ?? 0);
  const max = (xs: number[]) => (xs.length === 0 ? 0 : Math.max(...xs));
  const rss = names.map((name) => {
    const q2MaxKb = max(series(name, (x) => x.rssKb, 2));
    const q4MaxKb = max(series(name, (x) => x.rssKb, 4));
    const half = r.samples.filter((s) => s.t > d / 2);
    const slopeMiBPerMin = slope(half.map((s) => [s.t / 60, (s.instances.find((x) => x.name === name)?.rssKb ?? 0) / 1024]));
    return { name, q2MaxKb, q4MaxKb, slopeMiBPerMin, ok: q4MaxKb <= q2MaxKb * RSS_FACTOR + RSS_SLACK_MIB * 1024 };
  });
  const fds = names.map((name, i) => {
    const idleBefore = r.idleBefore[i]?.fds ?? 0;
    const idleAfter = r.idleAfter[i]?.fds ?? Infinity;
    const q2Max = max(series(name, (x) => x.fds, 2));
    const q4Max = max(series(name, (x) => x.fds, 4));
    return { name, idleBefore, idleAfter, q2Max, q4Max, ok: idleAfter <= idleBefore + IDLE_FD_SLACK && q4Max <= q2Max + LOAD_FD_SLACK };
  });
  const noUnretryable = r.unretryable.length === 0;
  const rssFlat = rss.every((x) => x.ok);
  const fdsFlat = fds.every((x) => x.ok);
  const faultsRan = r.faults.length === 3 && r.faults.every((f) => f.endS !== undefined);
  const conviction = convictions(r);
  const noConviction = conviction.flagsDuring.length === 0 && conviction.outside.length === 0;
  return { noUnretryable, rssFlat, fdsFlat, faultsRan, noConviction, conviction, pass: noUnretryable && rssFlat && fdsFlat && faultsRan && noConviction && !r.interrupted, rss, fds };
}

/**
 * The rule of issue 18 as the instances' logs show it: only harbor-lb's own checks convict a node,
 * so with the soak's clients (the hostile one included) the only nodes that may leave the path are
 * the ones its own faults hit, while those faults last (plus FAULT_MARGIN_S); and no flag is raised
 * once the traffic has started (the cluster has no misconfigured node).
 */
export function convictions(r: SoakResult): ConvictionCheck {
  const windows = r.faults
    .filter((f) => f.node !== undefined && f.startS !== undefined)
    .map((f) => ({ fault: f.name, node: f.node!, fromS: Math.max(0, f.startS! - 0.5), toS: (f.endS ?? r.ranS) + FAULT_MARGIN_S }));
  const check: ConvictionCheck = { windows, flagsBefore: [], flagsDuring: [], inWindow: [], outside: [], suspected: [] };
  for (const lg of r.logs) {
    for (const f of lg.flags) {
      if (!f.raised) continue;
      (f.t < 0 ? check.flagsBefore : check.flagsDuring).push({ instance: lg.name, t: f.t, node: f.node, what: `flag ${f.code}` });
    }
    for (const s of lg.states) {
      if (!CONVICTED_STATES.has(s.to)) continue;
      const e = { instance: lg.name, t: s.t, node: s.node, what: `${s.to}: ${s.why}` };
      const own = windows.some((w) => w.node === s.node && s.t >= w.fromS && s.t <= w.toS);
      (own ? check.inWindow : check.outside).push(e);
    }
    check.suspected.push({ instance: lg.name, lines: lg.suspected, notLogged: lg.suspectedNotLogged });
  }
  return check;
}

/** The figures of the "client traffic convicted no node" row. */
function convictionFigures(r: SoakResult, c: ConvictionCheck): string {
  const ev = (e: NodeEvent) => `${e.instance} ${e.node} ${e.what.slice(0, 140)} at ${e.t} s`;
  const byCode = (es: NodeEvent[]) => {
    const m = new Map<string, number>();
    for (const e of es) m.set(e.what, (m.get(e.what) ?? 0) + 1);
    return [...m].map(([k, n]) => `${n} × ${k.replace(/^flag /, '')}`).join(', ');
  };
  const parts: string[] = [];
  parts.push(
    `flags raised during the traffic: ${c.flagsDuring.length === 0 ? 'none' : c.flagsDuring.map(ev).join('; ')}` +
      (c.flagsBefore.length > 0 ? ` (before it, by harbor-lb's first probe: ${byCode(c.flagsBefore)})` : ''),
  );
  parts.push(
    `nodes gone unhealthy or quarantined outside their own fault's window: ${c.outside.length === 0 ? 'none' : c.outside.map(ev).join('; ')}; ` +
      `within it: ${c.inWindow.length === 0 ? 'none' : c.inWindow.map((e) => `${e.instance} ${e.node} ${e.what.split(':')[0]} at ${e.t} s`).join(', ')} ` +
      `(windows: ${c.windows.map((w) => `${w.node} ${w.fromS}–${w.toS} s`).join(', ') || 'none'})`,
  );
  parts.push(
    `node_suspected lines: ${c.suspected
      .map((s) => {
        const lines = Object.entries(s.lines);
        if (lines.length === 0) return `${s.instance} none`;
        return `${s.instance} ${lines.map(([cause, n]) => `${cause} ${n}${(s.notLogged[cause] ?? 0) > 0 ? ` (+${s.notLogged[cause]} held back)` : ''}`).join(', ')}`;
      })
      .join('; ')}`,
  );
  parts.push(
    `pin evictions at the end: ${r.pinEvictions
      .map((p) => `${p.name} ${p.evictions === undefined ? 'unreadable' : Object.entries(p.evictions).map(([space, n]) => `${space} ${n}`).join(', ')}`)
      .join('; ')}`,
  );
  return parts.join('; ');
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : Math.round((num / den) * 100) / 100;
}

const mib = (kb: number | undefined) => (kb === undefined ? '?' : (kb / 1024).toFixed(1));
const ms = (v: number | undefined) => (v === undefined ? '–' : v < 10 ? v.toFixed(1) : String(Math.round(v)));
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const pf = (ok: boolean) => (ok ? '**pass**' : '**FAIL**');

/** The Markdown report: command, machine, setup, faults, operations, resources, latency, verdict. */
export function formatReport(r: SoakResult, command: string): string {
  const v = verdict(r);
  const d = r.options.durationMs / 1000;
  const L: string[] = [];
  const near = (t: number) => r.samples.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best), r.samples[0]!);
  const first = r.samples[0];
  const middle = r.samples.length > 0 ? near(d / 2) : undefined;
  const end = r.samples[r.samples.length - 1];
  const totalOps = r.totals.ops;

  L.push('# Reliability: soak run', '');
  L.push(`Produced by \`${command}\` (started ${r.startedAt}, commit ${r.machine.commit}).`);
  L.push('Raw samples (JSON lines) and both instances\' logs stay on the machine that ran it; the figures below are all from this run.', '');
  L.push('## Verdict', '');
  L.push('| target | result | figures |', '|---|---|---|');
  L.push(`| no error a client could not recover from within ${r.options.maxRetries} retries | ${pf(v.noUnretryable)} | ${r.unretryable.length} unretryable errors in ${totalOps} operations (${r.totals.requests} requests, ${r.totals.retries} retries) |`);
  L.push(
    `| RSS flat | ${pf(v.rssFlat)} | ${v.rss.map((x) => `${x.name}: largest ${mib(x.q2MaxKb)} MiB in the 2nd quarter, ${mib(x.q4MaxKb)} MiB in the 4th; ${x.slopeMiBPerMin >= 0 ? '+' : ''}${x.slopeMiBPerMin} MiB/min over the 2nd half`).join('; ')} |`,
  );
  L.push(
    `| open fds flat | ${pf(v.fdsFlat)} | ${v.fds.map((x) => `${x.name}: idle ${x.idleBefore} before, ${x.idleAfter} after; under load largest ${x.q2Max} in the 2nd quarter, ${x.q4Max} in the 4th`).join('; ')} |`,
  );
  L.push(`| every fault ran | ${pf(v.faultsRan)} | ${r.faults.map((f) => f.name).join(', ')} |`);
  L.push(`| client traffic convicted no node | ${pf(v.noConviction)} | ${cell(convictionFigures(r, v.conviction))} |`);
  if (r.interrupted) L.push(`| run completed | **FAIL** | interrupted after ${r.ranS} s |`);
  L.push('');
  L.push(
    `Rules: RSS is flat when the largest RSS of the last quarter is at most ${RSS_FACTOR}× (+${RSS_SLACK_MIB} MiB) the largest of the second quarter (the first quarter is warm-up). ` +
      `Fds are flat when, once the clients have gone, each instance holds at most ${IDLE_FD_SLACK} more than it did idle before the run (waited ${r.idleAfterWaitS} s for that), and under load the last quarter's largest count is at most ${LOAD_FD_SLACK} above the second quarter's. ` +
      `No client convicts a node: from both instances' logs, no \`node_flag\` may be raised once the traffic has started (flags raised before it come from harbor-lb's first probe of the cluster, before any client), and a node may go \`unhealthy\` or \`quarantined\` only while a fault of the soak hits it (SIGKILL of h1 until its restart, SIGSTOP of h2 until SIGCONT) and up to ${FAULT_MARGIN_S} s after; \`node_suspected\` lines (client traffic pointed at a node and made harbor-lb check it at once; the check, not the traffic, decides) are counted, not failed. Pin evictions are read from each instance's \`harbor_lb_pin_evictions_total\` at the end.`,
    '',
  );

  L.push('## Setup', '');
  L.push(`- Machine: ${r.machine.nproc} CPUs (${r.machine.cpuModel}), ${(r.machine.memoryMiB / 1024).toFixed(1)} GiB memory, Node.js ${r.machine.node}.`);
  L.push(`  Load average before the run ${r.machine.loadBefore.join(' / ')}, after ${r.machine.loadAfter.join(' / ')} (1/5/15 min; other work on the machine shows here).`);
  const loads = r.samples.map((x) => x.load1).sort((a, b) => a - b);
  if (loads.length > 0) L.push(`  Load average (1 min) during the run: min ${loads[0]}, median ${loads[Math.floor(loads.length / 2)]}, max ${loads[loads.length - 1]} (it counts the soak itself: users, cores, registries, Redis, both instances, and anything else running on the machine).`);
  L.push(`- Duration ${d} s of traffic (${r.ranS} s until the last operation ended), ${r.options.users} simulated users, samples every ${r.options.sampleEveryMs / 1000} s.`);
  L.push(
    '- Cluster: 3 Harbor nodes `h1`–`h3`, each a real `docker-registry` (distribution 2.8) behind a simulated Harbor core (token service, health JSON, portal page, `/v2/` forwarding), all on one shared storage folder with one token key pair and one `http.secret`; one real `redis-server`.',
  );
  L.push(
    '- Two harbor-lb processes (`node dist/src/cli.js serve --config FILE`), `lb1` and `lb2`, with the same config: the three nodes, `token.rootCert` = the cluster certificate, `health.interval: 1s`, `sticky.store: redis` on the one Redis (same key prefix), traffic and admin listeners on free ports, defaults otherwise. RSS and fds are read from `/proc/PID/status` and `/proc/PID/fd`, node states from each admin `/-/status`.',
  );
  L.push(
    '- Users: in-process clients over `node:http`, each from its own loopback address (`127.0.0.10`…) with a keep-alive pool per instance, sending its requests to `lb1` and `lb2` in turn (as clients behind DNS round robin or an L4 balancer) with `Host: hub.soak.test:8070`, the `publicUrl` of both. Each loops until the end: an operation, then 0.1–0.7 s of think time. Operations: **push** 30 % (token with push scope; per blob a HEAD, and if missing POST → PATCH (two PATCHes for blobs over 256 KiB) → PUT with digest; OCI manifest PUT; 1–2 random layers of 1–64 KiB, one in ten 0.25–1 MiB, some layers reused), **pull** 40 % (token with pull scope, HEAD manifest by tag, GET manifest by digest, GET every blob, sha256 of each checked against what was pushed; any user\'s image), **login** 15 % (`GET /v2/` → 401 whose realm must name the public URL, token without scope, `GET /v2/` with it), **ui** 15 % (`GET /`, `/api/v2.0/health`, `/api/v2.0/ping`).',
  );
  L.push(
    `- Retries, as docker does them: a 5xx, 408, 429 or a request without a complete answer (refused, reset, cut, no answer within 30 s; 60 s for upload steps) is retried after 1, 2, 4 s; a failed blob upload restarts from its POST (docker restarts a layer; any non-401/403 error of an upload counts as retryable). A step still failing after ${r.options.maxRetries} retries, an unexpected 4xx, or content that does not match its digest is an **unretryable error**.`,
  );
  L.push('- Latency is per request, head sent to body read, measured by the client; routes: `token` (/service/token), `v2 pull` (GET/HEAD under /v2/), `upload` (blob POST/PATCH/PUT and manifest PUT), `ui`.', '');

  L.push('## Faults', '');
  L.push('| fault | planned at | started | ended | client retries from its start to 15 s after its end | what happened |', '|---|---|---|---|---|---|');
  for (const f of r.faults) {
    const within = f.startS === undefined ? 0 : r.retryTimes.filter((t) => t >= f.startS! && t <= (f.endS ?? f.startS!) + 15).length;
    L.push(`| ${f.name} | ${f.plannedAtS.toFixed(0)} s | ${f.startS ?? '–'} s | ${f.endS ?? '–'} s | ${within} | ${cell(f.detail)} |`);
  }
  L.push(
    `| slow-body client (throughout) | 0 s | 0 s | ${r.ranS} s | – | from 127.0.0.2: a real upload started (token, POST), then a PATCH announcing 10 MB sent at 1 byte/s on a raw socket; started again each time it ended: ${Object.entries(r.slowBody).map(([k, n]) => `${k} ×${n}`).join(', ') || 'never ended'} |`,
  );
  L.push(
    `| duplicate-Host client (throughout) | 0 s | 0 s | ${r.ranS} s | – | from 127.0.0.3: every ${d < 120 ? 3 : 5} s a burst of 10 connections, each \`GET /v2/ HTTP/1.1\` with two Host headers: ${Object.entries(r.duplicateHost).map(([k, n]) => `${k} ×${n}`).join(', ')} |`,
  );
  const hostileSent = Object.values(r.hostile).reduce((a, t) => a + Object.values(t).reduce((b, n) => b + n, 0), 0);
  L.push(
    `| hostile client (throughout) | 0 s | 0 s | ${r.ranS} s | – | ${cell(
      `from ${HOSTILE_ADDRESS}: the shapes that convicted healthy nodes before issue 18, one every ${HOSTILE_EVERY_MS} ms in turn (${(hostileSent / Math.max(1, r.ranS)).toFixed(1)} answers a second in all), ` +
        HOSTILE_SHAPES.map(({ shape, what }) => `**${shape}** (${what}): ${Object.entries(r.hostile[shape] ?? {}).map(([k, n]) => `${k} ×${n}`).join(', ') || 'no answer'}`).join('; ') +
        `; what it needed: ${Object.entries(r.hostileSetup).map(([k, n]) => `${k} ×${n}`).join(', ') || 'nothing yet'}`,
    )} |`,
    '',
  );
  if (r.hostileSlowReads.length > 0) {
    const after = r.hostileSlowReads.map((c) => c.afterS);
    L.push(`The hostile client's slow reads took ${Math.min(...after)}–${Math.max(...after)} s each (${r.hostileSlowReads.length} of them).`, '');
  }
  if (r.slowBodyCuts.length > 0) {
    const after = r.slowBodyCuts.map((c) => c.afterS);
    L.push(`The slow-body PATCH was ended ${r.slowBodyCuts.length} times, after ${Math.min(...after)}–${Math.max(...after)} s each.`, '');
  }

  L.push('## Operations', '');
  L.push('| operation | started | succeeded | unretryable errors | abandoned at the end |', '|---|---|---|---|---|');
  for (const [k, c] of Object.entries(r.ops)) L.push(`| ${k} | ${c.started} | ${c.ok} | ${c.failed} | ${c.abandoned} |`);
  L.push(`| **all** | ${r.totals.ops} | ${r.totals.ok} | ${r.totals.failed} | ${Object.values(r.ops).reduce((a, c) => a + c.abandoned, 0)} |`, '');
  L.push(`Requests answered: ${r.totals.requests} (${Object.entries(r.requests).map(([k, n]) => `${k}: ${n}`).join(', ')}).`);
  const te = Object.entries(r.transportErrors);
  L.push(`Requests without a complete answer: ${te.length === 0 ? 'none' : te.map(([k, n]) => `${k}: ${n}`).join(', ')}.`, '');
  L.push(`### Retries (${r.totals.retries})`, '');
  if (r.totals.retries === 0) L.push('None.', '');
  else {
    L.push('| operation/step: reason | count |', '|---|---|');
    for (const [k, n] of Object.entries(r.retries)) L.push(`| ${cell(k)} | ${n} |`);
    L.push('');
  }
  L.push(`### Unretryable errors (${r.unretryable.length})`, '');
  if (r.unretryable.length === 0) L.push('None.', '');
  else {
    L.push('| at | user | operation | step | attempts | message |', '|---|---|---|---|---|---|');
    for (const e of r.unretryable.slice(0, 50)) L.push(`| ${e.t} s | ${e.user} | ${e.op} | ${e.step} | ${e.attempts} | ${cell(e.message.slice(0, 400))} |`);
    if (r.unretryable.length > 50) L.push(`| … | | | | | ${r.unretryable.length - 50} more in the JSON lines |`);
    L.push('');
  }

  L.push('## Resources per instance', '');
  const pick = (s: Sample | undefined, name: string) => s?.instances.find((x) => x.name === name);
  const cols = [
    ['idle before', (n: string) => r.idleBefore.find((x) => x.name === n)],
    [`start (${first?.t ?? '?'} s)`, (n: string) => pick(first, n)],
    [`middle (${middle?.t ?? '?'} s)`, (n: string) => pick(middle, n)],
    [`end (${end?.t ?? '?'} s)`, (n: string) => pick(end, n)],
  ] as const;
  L.push(`| instance | figure | ${cols.map((c) => c[0]).join(' | ')} | max | idle after |`, `|---|---|${cols.map(() => '---').join('|')}|---|---|`);
  for (const name of r.idleBefore.map((x) => x.name)) {
    const all = r.samples.map((s) => pick(s, name));
    const after = r.idleAfter.find((x) => x.name === name);
    L.push(`| ${name} | RSS MiB | ${cols.map((c) => mib(c[1](name)?.rssKb)).join(' | ')} | ${mib(Math.max(...all.map((x) => x?.rssKb ?? 0)))} | ${mib(after?.rssKb)} |`);
    L.push(`| ${name} | open fds | ${cols.map((c) => String(c[1](name)?.fds ?? '?')).join(' | ')} | ${Math.max(...all.map((x) => x?.fds ?? 0))} | ${after?.fds ?? '?'} |`);
  }
  L.push('');
  const cpu = r.idleBefore.map((b) => {
    const e = end?.instances.find((x) => x.name === b.name);
    const used = (e?.cpuS ?? 0) - (b.cpuS ?? 0);
    return `${b.name} ${used.toFixed(1)} CPU-s (${((100 * used) / Math.max(1, r.ranS)).toFixed(0)} % of one CPU on average)`;
  });
  L.push(`CPU used during the traffic: ${cpu.join(', ')}.`, '');
  L.push('RSS and fds over time (one row per tenth of the run; node states as seen by lb1 / lb2, h = healthy, u = unhealthy, other = first letter):', '');
  L.push('| t | lb1 RSS MiB | lb1 fds | lb2 RSS MiB | lb2 fds | nodes (lb1 / lb2) | ops so far | retries | unretryable |', '|---|---|---|---|---|---|---|---|---|');
  const step = Math.max(1, Math.round(r.samples.length / 10));
  for (let i = 0; i < r.samples.length; i += step) row(r.samples[i]!);
  if ((r.samples.length - 1) % step !== 0 && end) row(end);
  L.push('');
  function row(s: Sample) {
    const a = s.instances[0];
    const b = s.instances[1];
    const st = (x: InstanceSample | undefined) => (x?.nodes ? Object.values(x.nodes).map((n) => n[0]).join('') : '?');
    L.push(`| ${s.t} s | ${mib(a?.rssKb)} | ${a?.fds ?? '?'} | ${mib(b?.rssKb)} | ${b?.fds ?? '?'} | ${st(a)} / ${st(b)} | ${s.totals.ops} | ${s.totals.retries} | ${s.totals.unretryable} |`);
  }

  L.push('## Latency per route (ms, whole run, all answers)', '');
  L.push('| route | requests | p50 | p99 | max |', '|---|---|---|---|---|');
  for (const route of ROUTES) {
    const s = r.latency[route];
    L.push(`| ${route} | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} |`);
  }
  L.push('');
  L.push('p99 per sampling interval, worst interval of each route (shows where the faults hurt):', '');
  L.push('| route | worst interval p99 | at |', '|---|---|---|');
  for (const route of ROUTES) {
    const worst = r.samples.reduce<Sample | undefined>((w, s) => ((s.latency[route].p99 ?? 0) > (w?.latency[route].p99 ?? 0) ? s : w), undefined);
    L.push(`| ${route} | ${ms(worst?.latency[route].p99)} | ${worst ? `${worst.t} s` : '–'} |`);
  }
  L.push('');

  L.push('## What harbor-lb logged', '');
  for (const lg of r.logs) {
    L.push(`### ${lg.name}: ${lg.requests} routing lines`, '');
    L.push(`- Answers by route: ${Object.entries(lg.byRouteStatus).map(([k, n]) => `${k}: ${n}`).join(', ')}.`);
    L.push(`- Node chosen because: ${Object.entries(lg.reasons).map(([k, n]) => `${k}: ${n}`).join(', ')}.`);
    const errs = Object.entries(lg.errors);
    L.push(`- Routing lines with an \`error\`: ${errs.length === 0 ? 'none' : errs.map(([k, n]) => `\`${k}\`: ${n}`).join(', ')}.`);
    const rej = Object.entries(lg.rejections);
    L.push(`- Connections rejected before routing: ${rej.length === 0 ? 'none' : rej.map(([k, n]) => `${k}: ${n}`).join(', ')}.`);
    const slow = Object.entries(lg.slow);
    L.push(`- Requests that took 5 s or more (node route status): ${slow.length === 0 ? 'none' : slow.map(([k, n]) => `${k}: ${n}`).join(', ')}.`);
    const warns = Object.entries(lg.warnings);
    L.push(`- Warnings and errors: ${warns.length === 0 ? 'none' : warns.map(([k, n]) => `${k}: ${n}`).join(', ')}.`);
    if (lg.otherLines.length > 0) L.push(`- Lines that were not JSON: ${lg.otherLines.length} (first: \`${cell(lg.otherLines[0]!.slice(0, 200))}\`).`);
    L.push('');
    if (lg.events.length > 0) {
      L.push('| at | event | message |', '|---|---|---|');
      for (const e of lg.events.slice(0, 40)) L.push(`| ${e.t} s | ${e.event} | ${cell(e.text)} |`);
      if (lg.events.length > 40) L.push(`| … | | ${lg.events.length - 40} more |`);
      L.push('');
    }
  }
  L.push(`Overall: ${v.pass ? '**pass**' : '**FAIL**'}.`, '');
  return L.join('\n');
}
