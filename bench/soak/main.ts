#!/usr/bin/env node
/**
 * `npm run soak -- [--duration 10m] [--users 24] [--out FILE] [--report docs/reliability.md] [--seed N]`
 *
 * Runs the soak (see run.ts) and prints the Markdown report; with --report, writes it there too.
 * Exit status 0 when every target held, 1 when one did not, 2 on bad usage, 3 when the run
 * itself failed (could not start, or overran its hard time limit).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/config/duration.js';
import { formatReport, verdict } from './report.js';
import { runSoak } from './run.js';

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10m' },
      users: { type: 'string', default: '24' },
      out: { type: 'string' },
      report: { type: 'string' },
      seed: { type: 'string', default: '1' },
    },
    strict: true,
  });
  const durationMs = parseDuration(values.duration);
  const users = Number(values.users);
  const seed = Number(values.seed);
  if (durationMs === undefined || durationMs < 20_000 || durationMs > 3_600_000) return usage('--duration takes 20s to 1h, e.g. 60s or 10m');
  if (!Number.isInteger(users) || users < 1 || users > 200) return usage('--users takes 1 to 200');
  if (!Number.isInteger(seed)) return usage('--seed takes an integer');
  const out = resolve(values.out ?? join(tmpdir(), `harbor-lb-soak-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, '');

  const interrupt = new AbortController();
  const onSignal = () => {
    process.stderr.write('soak: interrupted, stopping and cleaning up\n');
    interrupt.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Hard limit: the run, its grace for operations in flight, start-up and teardown.
  const hardLimit = setTimeout(() => {
    process.stderr.write('soak: overran its hard time limit; exiting (children are killed on exit)\n');
    process.exit(3);
  }, durationMs + 5 * 60_000);
  hardLimit.unref();

  const result = await runSoak({
    durationMs,
    users,
    out,
    logPrefix: out.replace(/\.jsonl$/, ''),
    seed,
    interrupt: interrupt.signal,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  clearTimeout(hardLimit);
  const command = `npm run soak -- ${argv.join(' ')}`.trim();
  const report = formatReport(result, command);
  process.stdout.write(`${report}\n`);
  if (values.report !== undefined) {
    writeFileSync(resolve(values.report), report);
    process.stderr.write(`soak: report written to ${values.report}\n`);
  }
  process.stderr.write(`soak: raw samples in ${out}; instance logs in ${result.logFiles.join(', ')}\n`);
  return verdict(result).pass ? 0 : 1;
}

function usage(message: string): number {
  process.stderr.write(`soak: ${message}\nusage: npm run soak -- [--duration 10m] [--users 24] [--out FILE] [--report FILE] [--seed N]\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 3;
  },
);
