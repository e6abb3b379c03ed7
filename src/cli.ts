#!/usr/bin/env node
// First: on an unsupported Node.js, stop before anything else loads.
import './runtime-check.js';
import { parseArgs } from 'node:util';
import { request, type Dispatcher } from 'undici';
import type { StatusDocument } from './admin/status.js';
import { createApp } from './app.js';
import { formatStatusTable } from './admin/status-table.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import { demoBanner, startDemo } from './demo/demo-cluster.js';
import { SavingsReport } from './demo/savings-report.js';
import { raiseMallocThresholds } from './util/malloc-thresholds.js';
import { diagnose } from './doctor/diagnose.js';
import { formatDoctorReport } from './doctor/report.js';
import { ListenError } from './proxy/listener.js';

const USAGE = `usage:
  harbor-lb serve --config FILE          run the proxy
  harbor-lb status [--admin URL] [--json] show node states (default admin URL http://127.0.0.1:9070)
  harbor-lb demo [--nodes N] [--port P] [--admin-port P] [--no-faults] [--tls] [--log-format pretty|json]
                                          simulated Harbor nodes (one misconfigured) behind harbor-lb
  harbor-lb doctor --config FILE [--json] diagnose a cluster once: exit 0 clean, 1 problems, 2 could not run`;

/** Exit codes: 0 fine, 1 a problem was found or the command failed, 2 bad usage or invalid config. */
async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'serve':
      return serve(rest);
    case 'status':
      return status(rest);
    case 'doctor':
      return doctor(rest);
    case 'demo':
      return demo(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return verb === undefined ? 2 : 0;
    default:
      process.stderr.write(`harbor-lb: unknown command "${verb}"\n${USAGE}\n`);
      return 2;
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  if (values.config === undefined) {
    process.stderr.write(`harbor-lb serve: --config FILE is required\n`);
    return 2;
  }
  const file = values.config;
  raiseMallocThresholds();
  const config = loadConfigFile(file);
  const app = createApp(config, { loadConfig: () => loadConfigFile(file) });
  // SIGHUP re-reads the file; the outcome is logged (config_reloaded or config_reload_failed).
  // Handled from before start-up to exit: Node's default for SIGHUP is to end the process, which
  // would cut every request in flight (a config reloader may signal at any time).
  let phase: 'starting' | 'serving' | 'stopping' = 'starting';
  const onHup = () => {
    if (phase === 'serving') void app.reload();
    else app.logger.warn({ event: 'config_reload_failed', problems: [`harbor-lb is ${phase}`] }, `SIGHUP ignored: harbor-lb is ${phase}`);
  };
  process.on('SIGHUP', onHup);
  await app.start();
  phase = 'serving';
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  phase = 'stopping';
  app.logger.info({ event: 'stopping' }, 'harbor-lb stopping');
  await app.close();
  return 0;
}

async function demo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '3' },
      port: { type: 'string', default: '8070' },
      'admin-port': { type: 'string', default: '9070' },
      'no-faults': { type: 'boolean', default: false },
      tls: { type: 'boolean', default: false },
      'log-format': { type: 'string', default: 'pretty' },
    },
    strict: true,
  });
  const nodes = Number(values.nodes);
  const port = Number(values.port);
  const adminPort = Number(values['admin-port']);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) return usage('--nodes takes 1 to 16');
  if (!Number.isInteger(port) || port < 0 || port > 65535) return usage('--port takes a port number');
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) return usage('--admin-port takes a port number');
  if (values['log-format'] !== 'pretty' && values['log-format'] !== 'json') return usage('--log-format takes pretty or json');
  const faults = !values['no-faults'];
  raiseMallocThresholds();
  const d = await startDemo({ nodes, port, adminPort, faults, tls: values.tls, logFormat: values['log-format'] === 'json' ? 'json' : 'pretty' });
  process.stderr.write(`${demoBanner(d, faults)}\n`);
  const savings = new SavingsReport(
    () => request(`${d.adminUrl}/metrics`).then((r) => r.body.text()),
    (line) => process.stderr.write(`${line}\n`),
  );
  savings.start(2_000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  savings.stop();
  await d.close();
  process.stderr.write('harbor-lb demo stopped; temporary data removed\n');
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`harbor-lb: ${message}\n${USAGE}\n`);
  return 2;
}

async function doctor(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } }, strict: true });
  if (values.config === undefined) {
    process.stderr.write('harbor-lb doctor: --config FILE is required\n');
    return 2;
  }
  const config = loadConfigFile(values.config);
  let report;
  try {
    report = await diagnose(config);
  } catch (err) {
    process.stderr.write(`harbor-lb doctor: could not run: ${(err as Error).message}\n`);
    return 2;
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctorReport(report)}\n`);
  return report.problems.some((p) => p.severity === 'error') ? 1 : 0;
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { admin: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
  const base = (values.admin ?? 'http://127.0.0.1:9070').replace(/\/+$/, '');
  // undici's request, not fetch: fetch refuses the ports browsers block (10080, 6000, 6665–6669…),
  // and an admin API may listen on any of them.
  let res: Dispatcher.ResponseData;
  try {
    res = await request(`${base}/-/status`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    process.stderr.write(`harbor-lb status: cannot reach the admin API at ${base}: ${(err as Error).message}\n`);
    return 1;
  }
  if (res.statusCode < 200 || res.statusCode > 299) {
    await res.body.dump();
    process.stderr.write(`harbor-lb status: ${base}/-/status answered ${res.statusCode}\n`);
    return 1;
  }
  const doc = (await res.body.json()) as StatusDocument;
  process.stdout.write(values.json ? `${JSON.stringify(doc, null, 2)}\n` : `${formatStatusTable(doc)}\n`);
  return doc.nodes.every((n) => n.state === 'healthy' || n.state === 'unknown') ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`harbor-lb: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof ListenError) {
      // An operator's problem (port taken, address not ours), not a bug: the message, no stack.
      process.stderr.write(`harbor-lb: ${err.message}\n`);
      process.exitCode = 1;
    } else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`harbor-lb: ${(err as Error).message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`harbor-lb: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
