import assert from 'node:assert/strict';
import { it } from 'node:test';
import { renderReport, type ReportInput } from '../../../bench/lib/report.js';
import type { Sample } from '../../../bench/lib/stats.js';

/** A run of 3 rounds with small GETs only: haproxy's and harbor-lb's rates, round by round. */
function run(haproxy: number[], harborLb: number[]): string {
  const samples: Sample[] = [];
  const add = (contender: string, rates: number[]) =>
    rates.forEach((reqPerS, round) => samples.push({ run: 'r', round, position: 0, metric: 'M1', variant: 'small GET', contender, ok: true, reqPerS, p50Ms: 1, p99Ms: 3, cpuUsPerReq: 20 }));
  add('haproxy', haproxy);
  add('harbor-lb', harborLb);
  const input: ReportInput = {
    settings: { quick: false, rounds: 3, m1Seconds: 8, m4Seconds: 5, m5Seconds: 6, blobsPerRun: 16 },
    facts: { date: '2026-12-06T18:00:00.000Z', command: 'npm run bench', commit: 'abc1234', nproc: 2, cpuModel: 'x', memory: '1 GiB', kernel: '6', node: 'v24', haproxy: '2.6', nginx: '1.22', redis: '7', wrk: '4', curl: '7', loadStart: '0 0 0', soakStart: false },
    samples,
    contenders: [
      { id: 'haproxy', label: 'haproxy 2.6, 2 threads' },
      { id: 'harbor-lb', label: 'harbor-lb, 2 workers (default)' },
    ],
    rssStartMiB: new Map(),
    hwmMiB: new Map(),
    routingLines: 0,
    lbRequests: 0,
    lbProcesses: [],
    cores: 2,
    crashed: [],
    jsonl: 'bench/results/x.jsonl',
  };
  return renderReport(input);
}

const smallGetTarget = (report: string) => report.split('\n').find((l) => l.startsWith('| small GETs ≥ 0.5x haproxy'));

it('a ratio just under its bound is shown to 3 decimals, never as the bound itself beside "not met"', () => {
  // Medians 27,742 and 56,000: 0.4954.
  const row = smallGetTarget(run([50_000, 56_000, 58_000], [27_742, 26_000, 29_000]));
  assert.ok(row?.includes('| 0.495x | **not met** |'), row);
  // Far from the bound, two decimals as before.
  assert.ok(smallGetTarget(run([50_000, 56_000, 58_000], [30_000, 31_000, 32_000]))?.includes('| 0.55x | met |'));
});

it("the small-GET target shows each round's ratio, so a run's own swing can be read beside its median", () => {
  const row = smallGetTarget(run([50_000, 56_000, 58_000], [27_742, 26_000, 29_000]));
  assert.ok(row?.startsWith('| small GETs ≥ 0.5x haproxy (round by round: 0.55x, 0.46x, 0.50x) |'), row);
});
