import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DestinationStream } from 'pino';
import type { Config } from '../config/schema.js';
import type { Parts } from '../app/compose.js';
import type { ClusterNode } from '../nodes/node.js';
import type { Clock } from '../util/clock.js';
import { AggregatorRegistry } from 'prom-client';
import type { FromWorker, NodeMirror, NodeRef, PinOp, ToWorker, WorkerReport } from './messages.js';
import type { SharedFlight } from '../coalesce/blob-flights.js';
import { workerConfig } from './worker-config.js';
import { acceptedFlags, wantedFlags, workerExecArgv } from './worker-exec-argv.js';
import { workerEnv } from '../util/malloc-thresholds.js';
import { ConnectionHandoff } from './connection-handoff.js';
import type { Socket } from 'node:net';
import { LogRateLimit } from '../util/log-rate-limit.js';

/** How often the control plane brings its copy of the workers' counters up to date (status page, charts). */
const REPORT_EVERY_MS = 1000;
/**
 * How often a worker's metrics are copied to the control plane besides each scrape: what a worker
 * that dies (kill -9, a crash) had counted since is lost to /metrics, so at most this much. About
 * 3 ms of a worker's CPU per copy.
 */
const METRICS_EVERY_MS = 5000;
/** How often node conditions are compared with what workers were last sent, besides on every change. */
const MIRROR_EVERY_MS = 250;
/** The node set's events that change what workers are sent of it: each sends the mirror at once. */
const MIRRORED_EVENTS = ['state', 'rule', 'routes', 'flag', 'added', 'removed', 'reachability'] as const;
/**
 * A worker that does not answer a question in this long is left out of the answer, and is late
 * until it says something: handed no new connection, asked nothing by a scrape, not counted as serving.
 */
const ASK_TIMEOUT_MS = 2000;
/** A worker that has not listened after this long is given up on (start-up fails, or it is replaced). */
const START_TIMEOUT_MS = 30_000;
/** A crashed worker is replaced after this long, doubling while it keeps crashing young, up to MAX. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A worker that lived this long before it crashed resets the back-off. */
const STABLE_AFTER_MS = 60_000;

/** One worker in /-/status. */
export interface WorkerStatus {
  index: number;
  pid: number | null;
  state: 'starting' | 'running' | 'restarting' | 'stopping';
  /** Client requests it received since it started, and has in flight now. */
  requests: number;
  inflight: number;
  rssBytes: number | null;
  /** Times this slot's worker was replaced after it ended unasked. */
  restarts: number;
  startedAt: string | null;
  /** Client connections it holds, as the control plane handed them (proxy.connectionBalance least-connections; null with kernel). */
  connections: number | null;
  /** Silent for 2 s or more while running (its event loop stuck): handed no new connection, killed after proxy.workerStallTimeout. */
  stalled: boolean;
}

export interface WorkerPoolOptions {
  count: number;
  /** The worker's entry module. */
  entry: string;
  /** Where worker log lines go when not straight to this process's stdout (tests capture them). */
  logDestination?: DestinationStream;
  /** What a worker's silence is timed on (proxy.workerStallTimeout): monotonic; the control plane's clock when not given. */
  watchClock?: Clock;
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  state: WorkerStatus['state'];
  startedAt: number;
  restarts: number;
  backoff: number;
  report: WorkerReport | undefined;
  /** What workers that ended in this slot had counted: the totals never go back when one is replaced. */
  retired: Map<string, { requests: number; failures: number }>;
  retiredRequests: number;
  /** Its worker's metric families as last answered (a late worker's last answer stands in for it). */
  metrics: object[] | undefined;
  /** When they were last copied by refresh(), on the control plane's clock. */
  metricsAt: number;
  /** What the workers that ended in this slot had counted, added up: /metrics counters never go back. */
  retiredMetrics: object[] | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** Client connections handed to its worker and not yet closed (connection handoff). */
  connections: number;
  /** Sockets sent to its worker that it has not told of, by number (connection handoff). */
  inTransit: Map<number, Socket>;
  lastSent: number;
  /** When its worker last sent anything (an answer, a verdict), on the watch clock. */
  heardAt: number;
  /** A question to it went unanswered for ASK_TIMEOUT_MS, and it has said nothing since (its event loop stuck, or SIGSTOP): see #watch. */
  late: boolean;
  /** Its lateness was logged (worker_stalled lines are rate-limited): its end is said too. */
  lateSaid: boolean;
  /** It was killed for its silence: what it says on its way out does not make it serve again. */
  stallKilled: boolean;
}

/**
 * The control plane's request workers (proxy.workers): it forks them, sends each the config,
 * the nodes' conditions and pin answers, takes in what they observe (attempt verdicts, slow
 * answers, token suspicion), asks them for their counters and metrics, replaces one that ends
 * unasked, and drains them all on close. With proxy.connectionBalance least-connections it holds
 * the client port and hands each connection to the worker with the fewest; with kernel, workers
 * bind the port themselves (reusePort). Either way no process stands between a client's bytes and
 * the worker that serves them.
 */
export class WorkerPool {
  readonly #slots: Slot[] = [];
  #port = 0;
  #config: Config;
  /** The V8 flags workers start with that this Node knows (worker-exec-argv.ts): no Maglev, slower heap growth, WebAssembly not tiered up. */
  readonly #v8Flags: ReadonlySet<string>;
  #closing = false;
  #lastMirror = '';
  #started = false;
  #mirrorTimer: NodeJS.Timeout | undefined;
  /** Stops listening for cluster-wide failures (close). */
  #unwatchCluster: (() => void) | undefined;
  #reportTimer: NodeJS.Timeout | undefined;
  #mirrorQueued = false;
  #askId = 1;
  readonly #asks = new Map<number, { slot: Slot; resolve: (value: unknown) => void }>();
  /** Nodes the control plane has had: one replaced by a reload keeps its totals but nothing in flight. */
  readonly #seen = new Set<ClusterNode>();
  /** Blob flights (coalesce.enabled) by digest: the worker that leads each, and its flight once started. */
  readonly #flights = new Map<string, { slot: Slot; flight: SharedFlight | undefined }>();
  /** Queued per node: what the workers last reported. */
  readonly #queued = new Map<string, number>();
  /** The client port's listener when the control plane hands out connections (least-connections). */
  readonly #handoff: ConnectionHandoff<Slot> | undefined;
  readonly #acceptLog = new LogRateLimit(1000);
  /** One worker_stalled warning per worker a minute: one that keeps answering late would say it every few seconds. */
  readonly #lateLog = new LogRateLimit(60_000);
  readonly #watchClock: Clock;

  constructor(
    private readonly parts: Parts,
    config: Config,
    private readonly opts: WorkerPoolOptions,
    private readonly clock: Clock,
  ) {
    this.#config = config;
    this.#watchClock = opts.watchClock ?? clock;
    this.#v8Flags = acceptedFlags(process.execPath, wantedFlags(process.execArgv));
    for (let index = 1; index <= opts.count; index++) {
      this.#slots.push({
        index,
        child: undefined,
        state: 'starting',
        startedAt: 0,
        restarts: 0,
        backoff: RESTART_MIN_MS,
        report: undefined,
        retired: new Map(),
        retiredRequests: 0,
        metrics: undefined,
        metricsAt: 0,
        retiredMetrics: undefined,
        restartTimer: undefined,
        connections: 0,
        inTransit: new Map(),
        lastSent: 0,
        heardAt: 0,
        late: false,
        lateSaid: false,
        stallKilled: false,
      });
    }
    if (config.proxy.connectionBalance === 'least-connections') {
      this.#handoff = new ConnectionHandoff<Slot>({
        targets: this.#slots,
        ready: (slot) => slot.state === 'running' && !slot.late && slot.child?.connected === true,
        // The socket's handle, not the socket: the worker makes its own socket of it (proxy/client-reads.ts).
        // Sent so, Node leaves this process's copy open: it is closed once the worker says it took
        // the connection (HandoffTarget.inTransit). A socket already closed goes without one.
        send: (slot, socket, seq, sent) => slot.child!.send({ t: 'conn', seq } satisfies ToWorker, handleOf(socket), {}, (err) => sent(err)),
        acceptFailed: (err) => {
          // Out of file descriptors fails every accept: one line a second at most.
          const held = this.#acceptLog.take('accept', this.clock.now());
          if (held !== undefined) this.parts.logger.error({ event: 'accept_failed', err: err.message, notLogged: held }, `could not accept a client connection: ${err.message}${held > 0 ? ` (${held} more since the last line)` : ''}`);
        },
      });
    }
  }

  /**
   * Starts every worker and resolves with the port they serve on once all listen. With port 0
   * the first worker's bind chooses it and the others join it. Rejects if one cannot start.
   */
  async start(port: number): Promise<number> {
    const { nodes } = this.parts;
    for (const event of MIRRORED_EVENTS) nodes.on(event, this.#queueMirror);
    this.#unwatchCluster = this.parts.outliers.onClusterChange(this.#queueMirror);
    if (this.#handoff !== undefined) {
      // The port is bound before any worker starts: connections wait for the first to be ready.
      this.#port = await this.#handoff.listen(port, this.#config.listen.address);
      await Promise.all(this.#slots.map((slot) => this.#spawn(slot, this.#port)));
      // Connections made during start-up waited for all of them, not just the first ready.
      this.#handoff.readyChanged();
    } else {
      const [first, ...rest] = this.#slots;
      this.#port = await this.#spawn(first!, port);
      await Promise.all(rest.map((slot) => this.#spawn(slot, this.#port)));
    }
    this.#started = true;
    // A worker that ended while the others were still starting is replaced like any other.
    for (const slot of this.#slots) if (slot.child === undefined && !this.#closing) this.#restartLater(slot, null, null);
    // Real timers: these keep processes in step, whatever clock the control plane's rules use.
    this.#mirrorTimer = setInterval(() => {
      this.#sendMirror();
      this.#checkInTransit();
    }, MIRROR_EVERY_MS).unref();
    this.#reportTimer = setInterval(() => void this.refresh(), REPORT_EVERY_MS).unref();
    return this.#port;
  }

  get count(): number {
    return this.#slots.length;
  }

  /** A reload was applied: every worker takes the config in force (each applies its live parts). */
  configure(config: Config): void {
    this.#config = config;
    for (const slot of this.#slots) this.#send(slot, { t: 'config', config: workerConfig(config, this.#slots.length, slot.index) });
  }

  /**
   * Asks every running worker for its counters and updates the control plane's copy of each
   * node's traffic, and every METRICS_EVERY_MS its metrics too (so a worker that dies takes at
   * most that much of its counts with it). The nodes' conditions go out first and a worker answers
   * in order, so once this resolves every worker runs on the state the control plane has now (an
   * admin drain included).
   */
  async refresh(): Promise<void> {
    this.#sendMirror();
    const now = this.clock.now();
    await Promise.all(
      this.#slots.map(async (slot) => {
        // A late worker is asked (an answer ends its lateness) but not waited for.
        if (slot.late) return void this.#ask(slot, 'report');
        const report = (await this.#ask(slot, 'report')) as WorkerReport | undefined;
        if (report !== undefined) slot.report = report;
        if (slot.child === undefined || now - slot.metricsAt < METRICS_EVERY_MS) return;
        slot.metricsAt = now;
        await this.#copyMetrics(slot);
      }),
    );
    this.#sumTraffic();
    // After the next poll: answers that came while this process was busy are read first.
    await new Promise((resolve) => setImmediate(resolve));
    this.#watch();
  }

  /**
   * A running worker late to answer (a question to it went unanswered for ASK_TIMEOUT_MS; it is
   * asked for its counters every second) gets no new connections and readiness does not count
   * it. Silent for proxy.workerStallTimeout, it is killed and replaced: its event loop is stuck,
   * and the connections it holds get nothing from it anyway.
   */
  #watch(): void {
    const now = this.#watchClock.now();
    const stall = this.#config.proxy.workerStallTimeout;
    for (const slot of this.#slots) {
      const child = slot.child;
      if (!slot.late || slot.stallKilled || slot.state !== 'running' || child === undefined || stall === 0) continue;
      const silentMs = now - slot.heardAt;
      if (silentMs < stall) continue;
      this.parts.logger.error(
        { event: 'worker_stalled', worker: slot.index, pid: child.pid, silentMs, killed: true },
        `request worker ${slot.index} has not answered for ${Math.round(silentMs / 1000)}s (proxy.workerStallTimeout): killed, a new one takes its place`,
      );
      slot.stallKilled = true;
      child.kill('SIGKILL');
    }
  }

  /** A question sent at `askedAt` to a running worker went unanswered for ASK_TIMEOUT_MS, and it has said nothing since. */
  #unanswered(slot: Slot, askedAt: number): void {
    if (slot.late || slot.heardAt > askedAt || slot.state !== 'running' || slot.child === undefined) return;
    slot.late = true;
    const stall = this.#config.proxy.workerStallTimeout;
    const held = this.#lateLog.take(String(slot.index), this.#watchClock.now());
    slot.lateSaid = held !== undefined;
    if (held !== undefined) {
      this.parts.logger.warn(
        { event: 'worker_stalled', worker: slot.index, pid: slot.child.pid, silentMs: this.#watchClock.now() - slot.heardAt, killed: false, notLogged: held },
        `request worker ${slot.index} has not answered for ${ASK_TIMEOUT_MS / 1000}s: ${this.#handoff === undefined ? 'it does not count as serving' : 'no new connections go to it'}${stall > 0 ? `; killed and replaced if silent for ${Math.round(stall / 1000)}s` : ''}`,
      );
    }
    this.#handoff?.readyChanged();
  }

  /** A worker said something: it is not stuck. */
  #heard(slot: Slot): void {
    slot.heardAt = this.#watchClock.now();
    if (!slot.late || slot.stallKilled) return;
    slot.late = false;
    if (slot.lateSaid) this.parts.logger.info({ event: 'worker_stalled', worker: slot.index, pid: slot.child?.pid, over: true }, `request worker ${slot.index} answers again: ${this.#handoff === undefined ? 'it counts as serving' : 'it takes new connections'}`);
    this.#handoff?.readyChanged();
  }

  async #copyMetrics(slot: Slot): Promise<void> {
    const answer = await this.#ask(slot, 'metrics');
    if (Array.isArray(answer)) slot.metrics = answer as object[];
  }

  /**
   * Every worker's metric families (prom-client JSON), for /metrics to add up: a worker that does
   * not answer in time counts with its last answer, and workers that ended count with what they
   * had, so no counter ever goes back (Prometheus would read a drop as a reset).
   */
  async metrics(): Promise<object[][]> {
    // A late worker counts with its last copy: a scrape does not wait on a stuck one.
    await Promise.all(this.#slots.map((slot) => (slot.late ? undefined : this.#copyMetrics(slot))));
    return this.#slots.flatMap((s) => [s.metrics, s.retiredMetrics].filter((m): m is object[] => m !== undefined));
  }

  /** Whether some worker serves the proxy port now (readiness: none while every one is being replaced). */
  serving(): boolean {
    return this.#slots.some((s) => s.state === 'running' && !s.late);
  }

  queued(node: ClusterNode): number {
    return this.#queued.get(node.name) ?? 0;
  }

  status(): WorkerStatus[] {
    return this.#slots.map((s) => ({
      index: s.index,
      pid: s.child?.pid ?? null,
      state: s.state,
      requests: s.retiredRequests + (s.report?.requests ?? 0),
      inflight: s.report?.inflight ?? 0,
      rssBytes: s.report?.rss ?? null,
      restarts: s.restarts,
      startedAt: s.startedAt > 0 ? new Date(s.startedAt).toISOString() : null,
      connections: this.#handoff === undefined ? null : s.connections,
      stalled: s.late,
    }));
  }

  /** Drains every worker (each lets its requests finish for up to graceMs) and waits for them to end. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const { nodes } = this.parts;
    for (const event of MIRRORED_EVENTS) nodes.off(event, this.#queueMirror);
    this.#unwatchCluster?.();
    clearInterval(this.#mirrorTimer);
    clearInterval(this.#reportTimer);
    // No new connections: those held finish on their workers.
    this.#handoff?.close();
    await Promise.all(
      this.#slots.map((slot) => {
        clearTimeout(slot.restartTimer);
        const child = slot.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return undefined;
        slot.state = 'stopping';
        return new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          this.#send(slot, { t: 'drain', graceMs });
          // A worker that does not end within its grace (plus time to close) is ended.
          const kill = setTimeout(() => child.kill('SIGKILL'), graceMs + 10_000);
          kill.unref();
          child.once('exit', () => clearTimeout(kill));
        });
      }),
    );
    for (const ask of this.#asks.values()) ask.resolve(undefined);
    this.#asks.clear();
  }

  // ---- one worker ------------------------------------------------------------------------------

  #spawn(slot: Slot, port: number): Promise<number> {
    const capture = this.opts.logDestination !== undefined;
    const execArgv = workerExecArgv(process.execArgv, process.env, this.#v8Flags);
    let child: ChildProcess;
    try {
      child = fork(this.opts.entry, [], { execArgv, env: workerEnv(), serialization: 'advanced', stdio: capture ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'] });
    } catch (err) {
      // No process at all (ENOMEM): the slot waits for its next try.
      return Promise.reject(err as Error);
    }
    if (capture) createInterface({ input: child.stdout! }).on('line', (line) => this.opts.logDestination!.write(`${line}\n`));
    slot.child = child;
    slot.state = 'starting';
    slot.startedAt = this.clock.now();
    slot.report = undefined;
    slot.late = false;
    slot.stallKilled = false;
    slot.heardAt = this.#watchClock.now();
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`request worker ${slot.index} did not start within ${START_TIMEOUT_MS / 1000}s`)), START_TIMEOUT_MS);
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.on('message', (msg: FromWorker) => {
        if (slot.child === child) this.#heard(slot);
        if (msg.t === 'listening' && !settled) {
          settled = true;
          clearTimeout(timer);
          // One that began to drain meanwhile stays stopping.
          if (slot.state === 'starting') slot.state = 'running';
          this.#lastMirror = '';
          this.#sendMirror();
          if (this.#started) this.#handoff?.readyChanged();
          return resolve(msg.port);
        }
        if (msg.t === 'failed') return fail(new Error(msg.message));
        // A worker already replaced speaks for nothing its slot holds now.
        if (slot.child === child) this.#received(slot, msg);
      });
      child.once('exit', (code, signal) => {
        fail(new Error(`request worker ${slot.index} ended before it listened (${signal ?? `exit code ${code}`})`));
        this.#ended(slot, child, code, signal);
      });
      // A fork that could not start (EAGAIN, EMFILE) says so here and never exits: ended all the same.
      child.on('error', (err) => {
        fail(new Error(`request worker ${slot.index} could not start: ${err.message}`));
        if (child.exitCode === null && child.signalCode === null && child.pid === undefined) this.#ended(slot, child, null, null);
      });
      this.#send(slot, { t: 'start', config: workerConfig(this.#config, this.#slots.length, slot.index), port, index: slot.index, mirror: this.#mirror(), handoff: this.#handoff !== undefined });
    });
  }

  #ended(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    for (const [name, t] of Object.entries(slot.report?.nodes ?? {})) {
      const r = slot.retired.get(name) ?? { requests: 0, failures: 0 };
      slot.retired.set(name, { requests: r.requests + t.requests, failures: r.failures + t.failures });
    }
    slot.retiredRequests += slot.report?.requests ?? 0;
    slot.report = undefined;
    slot.late = false;
    // Its connections ended with it, and those on their way to it.
    this.#handoff?.gone(slot);
    if (slot.metrics !== undefined) {
      // Counters and histograms live on in the totals; gauges (in flight, memory) end with the process.
      const lasting = slot.metrics.filter((m) => ['counter', 'histogram'].includes((m as { type?: string }).type ?? ''));
      slot.retiredMetrics = slot.retiredMetrics === undefined ? lasting : retiredSum(slot.retiredMetrics, lasting);
      slot.metrics = undefined;
    }
    slot.child = undefined;
    // Its flights are over: their readers elsewhere see them end (a cut, unless verified already).
    for (const [digest, held] of this.#flights) {
      if (held.slot !== slot) continue;
      this.#flights.delete(digest);
      // Its spill folder has nobody left to remove it (readers elsewhere keep their open files).
      if (held.flight !== undefined) rmSync(dirname(held.flight.file), { recursive: true, force: true });
      this.#tellFlight(slot, digest, held.flight?.state === 'ok' ? undefined : held.flight && { ...held.flight, state: 'failed' });
    }
    for (const [id, ask] of this.#asks) {
      if (ask.slot !== slot) continue;
      this.#asks.delete(id);
      ask.resolve(undefined);
    }
    // During start-up a worker that ends fails the start instead.
    if (this.#closing || !this.#started) return;
    this.#restartLater(slot, code, signal);
  }

  #restartLater(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    const lived = this.clock.now() - slot.startedAt;
    if (lived >= STABLE_AFTER_MS) slot.backoff = RESTART_MIN_MS;
    const wait = slot.backoff;
    slot.backoff = Math.min(slot.backoff * 2, RESTART_MAX_MS);
    // Drained on its own (SIGTERM sent to it alone) and ended well: only what its drain cut, if any, failed.
    const drained = slot.state === 'stopping' && code === 0;
    slot.state = 'restarting';
    slot.restarts++;
    const fields = { event: 'worker_exited', worker: slot.index, code, signal, restartInMs: wait, restarts: slot.restarts };
    if (drained) {
      this.parts.logger.info({ ...fields, drained: true }, `request worker ${slot.index} was told to stop, drained (up to listen.shutdownGrace) and ended (exit code 0); a new one starts in ${wait} ms`);
    } else {
      this.parts.logger.error(
        fields,
        `request worker ${slot.index} ended unasked (${signal ?? `exit code ${code}`}); its requests in flight failed, the other workers go on; a new one starts in ${wait} ms`,
      );
    }
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#closing) return;
      void this.#spawn(slot, this.#port).then(
        () => this.parts.logger.info({ event: 'worker_started', worker: slot.index, pid: slot.child?.pid }, `request worker ${slot.index} is back`),
        (err: Error) => this.parts.logger.error({ event: 'worker_start_failed', worker: slot.index, err: err.message }, `request worker ${slot.index} could not start: ${err.message}`),
      );
    }, wait).unref();
  }

  #send(slot: Slot, msg: ToWorker): void {
    const child = slot.child;
    if (child === undefined || !child.connected) return;
    try {
      child.send(msg, (err) => {
        // The worker is gone; its exit is handled there.
        void err;
      });
    } catch {
      // No IPC channel (the fork failed): its 'error' and 'exit' handle it.
    }
  }

  #ask(slot: Slot, what: 'report' | 'metrics'): Promise<unknown> {
    const child = slot.child;
    if (slot.state !== 'running' || child === undefined) return Promise.resolve(undefined);
    const id = this.#askId++;
    const askedAt = this.#watchClock.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        // After the next poll: an answer that waited in the channel while this process was busy is no silence.
        setImmediate(() => {
          if (slot.child === child) this.#unanswered(slot, askedAt);
        });
        resolve(undefined);
      }, ASK_TIMEOUT_MS);
      timer.unref();
      this.#asks.set(id, {
        slot,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
      });
      this.#send(slot, { t: 'ask', id, what });
    });
  }

  /** What a worker observed, applied as if the control plane had seen it itself. */
  #received(slot: Slot, msg: FromWorker): void {
    const { nodes, outliers, trustProbe } = this.parts;
    switch (msg.t) {
      case 'verdicts': {
        let failed = false;
        for (const [ref, verdict] of msg.items) {
          const node = this.#node(ref);
          if (node !== undefined) outliers.record(node, verdict);
          failed ||= verdict.kind !== 'answered';
        }
        // What verdicts change that workers route by raises an event of its own, which sends the
        // mirror: a node's state, reachability or ejection, a cluster-wide failure beginning or
        // ending. A batch with a failure sends one all the same (why a node is unreachable, say,
        // changes no event), and so does one that changed which nodes' good answers are wanted.
        // Otherwise nothing more: building and comparing a mirror per batch cost the control plane
        // about 0.4 µs per request when every worker sent its good answers.
        if (failed || this.#answersWanted().join(' ') !== this.#wantedSaid) this.#queueMirror();
        return;
      }
      case 'told':
        this.#handoff?.told(slot, msg.through, msg.declined);
        this.#handoff?.closed(slot, msg.closed);
        return;
      case 'draining':
        // No more connections for it; once it ends it is replaced (unless the pool is closing).
        // The answer follows every connection sent to it before: after it, none can come.
        slot.state = 'stopping';
        this.#send(slot, { t: 'drain-ack', through: slot.lastSent });
        return;
      case 'slow': {
        const node = this.#node(msg.node);
        if (node !== undefined) outliers.slowAnswer(node);
        return;
      }
      case 'suspect': {
        const node = this.#node(msg.node);
        if (node === undefined) return;
        trustProbe?.suspect(node);
        if (msg.why !== undefined) this.parts.guard?.saySuspected(node, msg.why);
        return;
      }
      case 'reload-failed':
        this.parts.logger.error(
          { event: 'worker_reload_failed', worker: slot.index, problems: msg.problems },
          `request worker ${slot.index} could not apply the reloaded config and keeps its old one: ${msg.problems.join('; ')}; it is replaced to take the new one`,
        );
        // A fresh worker starts from the config in force.
        slot.child?.kill('SIGTERM');
        return;
      case 'good-issuer': {
        const node = this.#node(msg.node);
        if (node !== undefined) this.parts.guard?.goodIssuerSeen(node);
        return;
      }
      case 'verified':
        // To every other worker: a client's token is as verified there as where it was checked.
        this.#tellOthers(slot, msg);
        return;
      case 'csrf':
        trustProbe?.csrfSuspected();
        return;
      case 'flight-claim': {
        const held = this.#flights.get(msg.digest);
        if (held === undefined || held.slot === slot) {
          this.#flights.set(msg.digest, held ?? { slot, flight: undefined });
          return this.#send(slot, { t: 'answer', id: msg.id, value: 'lead' });
        }
        // What is known of it first (channels keep order): a worker that started after the flight did hears of it.
        if (held.flight !== undefined) this.#send(slot, { t: 'flight', digest: msg.digest, flight: held.flight });
        return this.#send(slot, { t: 'answer', id: msg.id, value: 'elsewhere' });
      }
      case 'flight-started':
      case 'flight-settled': {
        const digest = msg.t === 'flight-started' ? msg.flight.digest : msg.digest;
        const held = this.#flights.get(digest);
        if (held === undefined || held.slot !== slot) return;
        if (msg.t === 'flight-started') held.flight = msg.flight;
        else if (held.flight !== undefined) held.flight = { ...held.flight, state: msg.ok ? 'ok' : 'failed' };
        this.#tellFlight(slot, digest, held.flight);
        return;
      }
      case 'flight-closed': {
        const held = this.#flights.get(msg.digest);
        if (held === undefined || held.slot !== slot) return;
        this.#flights.delete(msg.digest);
        this.#tellFlight(slot, msg.digest, undefined);
        return;
      }
      case 'cache-added':
      case 'cache-verified':
        if (msg.t === 'cache-added') this.parts.cache?.added(msg.digest, msg.size);
        // Kept, or seen to match: the other workers serve it without hashing it again.
        this.#tellOthers(slot, { t: 'cache-trusted', digest: msg.digest });
        return;
      case 'pin':
        void this.#pin(msg.pin).then((value) => this.#send(slot, { t: 'answer', id: msg.id, value }));
        return;
      case 'answer': {
        const ask = this.#asks.get(msg.id);
        this.#asks.delete(msg.id);
        ask?.resolve(msg.value);
        return;
      }
      default:
        return;
    }
  }

  /**
   * A socket whose message a worker dropped (the descriptor did not fit: out of file
   * descriptors) is never told of by a later one when it was the last sent: asking now and then
   * lets the worker see the gap and decline it, so it goes to another worker.
   */
  #checkInTransit(): void {
    for (const slot of this.#slots) if (slot.inTransit.size > 0 && slot.state === 'running') this.#send(slot, { t: 'conn-check', through: slot.lastSent });
  }

  /** Every other worker hears of a worker's flight. */
  #tellFlight(from: Slot, digest: string, flight: SharedFlight | undefined): void {
    this.#tellOthers(from, { t: 'flight', digest, flight });
  }

  /** To every worker but the one it came from. */
  #tellOthers(from: Slot, msg: ToWorker): void {
    for (const slot of this.#slots) if (slot !== from) this.#send(slot, msg);
  }

  /** A worker's pin operation on the control plane's store: null for no pin, true for done. */
  async #pin(op: PinOp): Promise<unknown> {
    const store = this.parts.store;
    switch (op.op) {
      case 'get':
        return (await store.get(op.key, op.renewMs)) ?? null;
      case 'setIfAbsent':
        return store.setIfAbsent(op.key, op.value, op.ttlMs, op.owner);
      case 'set':
        await store.set(op.key, op.value, op.ttlMs, op.owner);
        return true;
      case 'delete':
        await store.delete(op.key);
        return true;
    }
  }

  // ---- node state to the workers ----------------------------------------------------------------

  readonly #queueMirror = (): void => {
    if (this.#mirrorQueued) return;
    this.#mirrorQueued = true;
    setImmediate(() => {
      this.#mirrorQueued = false;
      this.#sendMirror();
    });
  };

  /** The node a worker names, if it is still the one of that name (not replaced by a reload since). */
  #node(ref: NodeRef): ClusterNode | undefined {
    const node = this.parts.nodes.get(ref.name);
    return node?.url === ref.url ? node : undefined;
  }

  /** The nodes whose good answers the outlier detector waits for, as the last mirror sent said. */
  #wantedSaid = '';

  #answersWanted(): string[] {
    const { nodes, outliers } = this.parts;
    const wanted: string[] = [];
    for (const n of nodes.all) if (outliers.awaitsAnswer(n)) wanted.push(n.name);
    return wanted;
  }

  #mirror(): NodeMirror {
    const { nodes, outliers, skew } = this.parts;
    const failures = outliers.clusterFailures;
    return {
      nodes: nodes.mirror(),
      // lastSeen moves with every failed answer: workers need only whether and since when.
      clusterFailures: failures.map((f) => ({ ...f, lastSeen: f.since })),
      tokensAway: nodes.all.filter((n) => skew.tokensAway(n)).map((n) => n.name),
      answersWanted: this.#answersWanted(),
    };
  }

  /** Sends the nodes' conditions to every worker when they differ from what was sent last. */
  #sendMirror(): void {
    if (this.#closing) return;
    const mirror = this.#mirror();
    this.#wantedSaid = mirror.answersWanted.join(' ');
    // An ejection's remaining time shrinks by the millisecond: compared by when it ends.
    const now = this.clock.now();
    const key = JSON.stringify({ ...mirror, nodes: mirror.nodes.map((n) => ({ ...n, ejectedForMs: n.ejectedForMs > 0 ? Math.round((now + n.ejectedForMs) / 100) : 0 })) });
    if (key === this.#lastMirror) return;
    this.#lastMirror = key;
    for (const slot of this.#slots) this.#send(slot, { t: 'nodes', mirror });
  }

  /** The control plane's nodes count what their workers sent, those since replaced included. */
  #sumTraffic(): void {
    this.#queued.clear();
    const all = new Set(this.parts.nodes.all);
    // A node replaced by a reload: the workers finish its requests on their own copies; here it keeps its totals and nothing in flight, so it can leave.
    for (const node of this.#seen) {
      if (all.has(node)) continue;
      node.traffic.setTotals(0, node.traffic.requests, node.traffic.failures);
      if (!this.parts.nodes.has(node)) this.#seen.delete(node);
    }
    for (const node of all) this.#seen.add(node);
    for (const node of this.parts.nodes.all) {
      let inflight = 0;
      let requests = 0;
      let failures = 0;
      let queued = 0;
      for (const slot of this.#slots) {
        const r = slot.report?.nodes[node.name];
        const gone = slot.retired.get(node.name);
        inflight += r?.inflight ?? 0;
        queued += r?.queued ?? 0;
        requests += (r?.requests ?? 0) + (gone?.requests ?? 0);
        failures += (r?.failures ?? 0) + (gone?.failures ?? 0);
      }
      node.traffic.setTotals(inflight, requests, failures);
      this.#queued.set(node.name, queued);
    }
  }
}

/** Two sets of a slot's retired metric families added up, series by series (counters and histograms only grow). */
function retiredSum(a: object[], b: object[]): object[] {
  return AggregatorRegistry.aggregate([a, b] as Parameters<typeof AggregatorRegistry.aggregate>[0])
    .getMetricsAsArray()
    .map((m) => (m as unknown as { get(): object }).get());
}

/**
 * A client socket's handle, as Node sends it over the IPC channel ('net.Native': the descriptor
 * alone, this process's copy left open), or undefined once the socket is closed.
 */
function handleOf(socket: Socket): Socket | undefined {
  return ((socket as unknown as { _handle?: Socket | null })._handle ?? undefined);
}
