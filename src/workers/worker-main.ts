import type { Config } from '../config/schema.js';
import { composeApp, type App } from '../app.js';
import type { Parts } from '../app/compose.js';
import { ProcessControlLink } from './control-link.js';
import type { FromWorker, NodeMirror, ToWorker, WorkerReport } from './messages.js';
import { workerMetrics } from './worker-metrics.js';
import type { WorkerSide } from './worker-side.js';
import { raiseMallocThresholds } from '../util/malloc-thresholds.js';
import { HandedConnections } from './handed-connections.js';
import { residentBytes } from '../util/resident-bytes.js';
import { Socket, type SocketConstructorOpts } from 'node:net';

/**
 * A request worker (proxy.workers > 1), forked by the control plane's WorkerPool: it serves
 * client traffic on the shared port and nothing else. Everything it knows of the nodes and the
 * pins comes from the control plane over the IPC channel, and everything it observes goes there.
 */
// The worker reads the client and node sockets: it needs what `harbor-lb serve` does for this at start (see there).
raiseMallocThresholds();

const send = (msg: FromWorker, then?: () => void): void => {
  // A control plane gone mid-write is an error to the callback, never an uncaught one: 'disconnect' drains.
  if (process.connected) process.send!(msg, undefined, {}, () => then?.());
  else then?.();
};

const link = new ProcessControlLink(send);
const side: WorkerSide & { cluster: { failures: WorkerSide['cluster']['failures']; tokensAway: Set<string> } } = {
  link,
  cluster: { failures: new Map(), tokensAway: new Set() },
};
let worker: { app: App; parts: Parts } | undefined;
/** The connections the control plane hands this worker (proxy.connectionBalance least-connections). */
let handed: HandedConnections | undefined;
/** The config the next reload applies (the control plane sends it, checked). */
let nextConfig: Config | undefined;
let stopping: Promise<void> | undefined;
/** Resolves once the control plane heard that this worker drains (drain-ack). */
let drainHeard: (() => void) | undefined;
/** How long a draining worker waits for the control plane to stop handing it connections. */
const DRAIN_ACK_MS = 1000;

function stop(graceMs?: number): void {
  stopping ??= (async () => {
    if (process.connected) {
      // No new connections: those already on their way are declined (handed on) until the
      // control plane says it heard, after which none can come.
      const heard = new Promise<void>((resolve) => (drainHeard = resolve));
      send({ t: 'draining' });
      await Promise.race([heard, new Promise((resolve) => setTimeout(resolve, DRAIN_ACK_MS).unref())]);
    }
    link.close();
    if (worker) await worker.app.close(graceMs);
    handed?.flush();
    // Gone already when the control plane died (that is what started this stop): disconnecting again throws.
    if (process.connected) process.disconnect();
    process.exit(0);
  })();
}

function follow(mirror: NodeMirror): void {
  link.want(mirror.answersWanted);
  side.cluster.failures = new Map(mirror.clusterFailures.map((f) => [f.route, f]));
  side.cluster.tokensAway = new Set(mirror.tokensAway);
  worker?.parts.nodes.follow(mirror.nodes);
}

async function start(config: Config, port: number, mirror: NodeMirror, handoff: boolean): Promise<void> {
  try {
    worker = composeApp(config, { worker: side, loadConfig: () => nextConfig ?? config }, () => ({ kind: 'worker', port, handoff }));
    // Connections come as soon as it binds (or says it listens): it knows the nodes' state before.
    follow(mirror);
    const urls = await worker.app.start();
    // Told to stop while it started: it never says it listens, and is handed nothing.
    if (stopping !== undefined) return;
    if (handoff) {
      handed = new HandedConnections(worker.parts.servers.proxy!, { told: (through, declined, closed) => send({ t: 'told', through, declined, closed }) });
    }
    send({ t: 'listening', port: urls.proxyPort });
  } catch (err) {
    send({ t: 'failed', message: (err as Error).message }, () => process.exit(1));
  }
}

function report(parts: Parts): WorkerReport {
  const nodes: WorkerReport['nodes'] = {};
  for (const n of parts.nodes.all) nodes[n.name] = { inflight: n.traffic.inflight, requests: n.traffic.requests, failures: n.traffic.failures, queued: parts.admission.queued(n) };
  return { nodes, requests: parts.handler.handled(), inflight: parts.handler.inflight(), rss: residentBytes() };
}

process.on('message', (msg: ToWorker, handle?: object) => {
  switch (msg.t) {
    case 'start':
      return void start(msg.config, msg.port, msg.mirror, msg.handoff);
    case 'conn':
      // Sent before the control plane heard that this worker drains, or without its socket (the
      // descriptor did not arrive): not served here, handed on.
      if (handed === undefined || worker === undefined) return void (handle && new Socket({ handle } as SocketConstructorOpts).destroy());
      if (stopping !== undefined || handle === undefined) return handed.decline(msg.seq, handle && worker.parts.clientReads.socketFor(handle));
      // A plain HTTP listener's connections read into buffers the worker shares (proxy/client-reads.ts).
      return handed.take(msg.seq, worker.parts.clientReads.socketFor(handle));
    case 'conn-check':
      return handed?.reach(msg.through);
    case 'drain-ack':
      handed?.reach(msg.through);
      return drainHeard?.();
    case 'nodes':
      return follow(msg.mirror);
    case 'config': {
      nextConfig = msg.config;
      const result = worker?.app.reload();
      if (result !== undefined && !result.ok) send({ t: 'reload-failed', problems: result.problems });
      return;
    }
    case 'answer':
      return link.answered(msg);
    case 'flight':
      return worker?.parts.flights?.remoteUpdate(msg.digest, msg.flight);
    case 'cache-trusted':
      return worker?.parts.cache?.trust(msg.digest);
    case 'verified':
      return worker?.parts.guard?.verifier.learn(msg.hash, msg.verdict, msg.until);
    case 'ask': {
      const parts = worker?.parts;
      if (parts === undefined) return send({ t: 'answer', id: msg.id, value: undefined });
      if (msg.what === 'report') return send({ t: 'answer', id: msg.id, value: report(parts) });
      return void workerMetrics(parts.metrics).then(
        (value) => send({ t: 'answer', id: msg.id, value }),
        () => send({ t: 'answer', id: msg.id, value: undefined }),
      );
    }
    case 'drain':
      return stop(msg.graceMs);
  }
});

// The control plane gone (it crashed or was killed): a worker must not go on serving on stale
// node state with nobody to replace it. It drains and ends; the supervisor restarts harbor-lb.
process.on('disconnect', () => stop());
// Signals sent to the whole process group: SIGTERM and SIGINT drain as the control plane's message
// would; SIGHUP is the control plane's to act on (it sends the reloaded config), never the end of a worker.
process.on('SIGTERM', () => stop());
process.on('SIGINT', () => stop());
process.on('SIGHUP', () => {});
