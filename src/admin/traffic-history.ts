import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { NodeSlot } from '../nodes/node-slot.js';
import type { Clock, Timer } from '../util/clock.js';

/** One step of a node's traffic: when it ended, and its requests and failures per second. */
export type TrafficPoint = [at: number, requestsPerSecond: number, failuresPerSecond: number];

/** A state change or a flag raised or cleared, marked on the node's chart. */
export interface TrafficEvent {
  at: number;
  node: string;
  kind: 'state' | 'flag';
  text: string;
}

/** What GET /-/history answers: every node's last 15 minutes, oldest first, the step under way last. */
export interface TrafficHistoryDocument {
  now: number;
  stepMs: number;
  spanMs: number;
  nodes: Array<{ name: string; points: TrafficPoint[] }>;
  events: TrafficEvent[];
}

const STEP_MS = 10_000;
const SPAN_MS = 15 * 60_000;
const MAX_EVENTS = 500;

interface Series {
  points: TrafficPoint[];
  /** The node's counters when the step under way began. */
  requests: number;
  failures: number;
}

/**
 * The status page's charts, kept by harbor-lb itself so they work without Prometheus: every 10 s,
 * each node's requests and failures per second over that step (from its traffic counters), for
 * the last 15 minutes; and its state changes and flags. Bounded: 90 points per node, 500 events.
 */
export class TrafficHistory {
  readonly #series: NodeSlot<Series>;
  readonly #events: TrafficEvent[] = [];
  #stepStart: number;
  #timer: Timer | undefined;

  constructor(
    private readonly nodes: Pick<NodeSet, 'all' | 'slot' | 'on' | 'off'>,
    private readonly clock: Clock,
  ) {
    this.#stepStart = clock.now();
    this.#series = nodes.slot<Series>((node) => ({ points: [], requests: node.traffic.requests, failures: node.traffic.failures }));
  }

  start(): void {
    this.nodes.on('state', this.#onState);
    this.nodes.on('flag', this.#onFlag);
    this.#stepStart = this.clock.now();
    for (const n of this.nodes.all) this.#series.get(n);
    this.#arm();
  }

  stop(): void {
    this.nodes.off('state', this.#onState);
    this.nodes.off('flag', this.#onFlag);
    if (this.#timer) this.clock.clearTimeout(this.#timer);
  }

  #arm(): void {
    this.#timer = this.clock.setTimeout(() => {
      this.sample();
      this.#arm();
    }, STEP_MS);
    this.#timer.unref?.();
  }

  /** Ends the step under way: each node's rates over it become a point. */
  sample(): void {
    const now = this.clock.now();
    for (const node of this.nodes.all) {
      const s = this.#series.get(node);
      s.points.push(this.#point(node, s, now));
      s.requests = node.traffic.requests;
      s.failures = node.traffic.failures;
      while (s.points.length > 0 && s.points[0]![0] <= now - SPAN_MS) s.points.shift();
    }
    this.#stepStart = now;
    this.#prune(now);
  }

  #point(node: ClusterNode, s: Series, now: number): TrafficPoint {
    const seconds = Math.max(0.001, (now - this.#stepStart) / 1000);
    const round = (x: number) => Math.round(x * 100) / 100;
    return [now, round((node.traffic.requests - s.requests) / seconds), round((node.traffic.failures - s.failures) / seconds)];
  }

  document(): TrafficHistoryDocument {
    const now = this.clock.now();
    this.#prune(now);
    return {
      now,
      stepMs: STEP_MS,
      spanMs: SPAN_MS,
      // The step under way, so far, ends each series: a page opened just after start has something to show.
      nodes: this.nodes.all.map((node) => {
        const s = this.#series.get(node);
        return { name: node.name, points: now > this.#stepStart ? [...s.points, this.#point(node, s, now)] : [...s.points] };
      }),
      events: [...this.#events],
    };
  }

  readonly #onState = ({ node, from, to, why }: { node: ClusterNode; from: string; to: string; why: string }): void => {
    this.#event({ at: this.clock.now(), node: node.name, kind: 'state', text: `${from} to ${to}: ${why}` });
  };

  readonly #onFlag = ({ node, code, raised }: { node: ClusterNode; code: string; raised: boolean }): void => {
    this.#event({ at: this.clock.now(), node: node.name, kind: 'flag', text: `${code} ${raised ? 'raised' : 'cleared'}` });
  };

  #event(e: TrafficEvent): void {
    this.#events.push(e);
    if (this.#events.length > MAX_EVENTS) this.#events.shift();
  }

  #prune(now: number): void {
    while (this.#events.length > 0 && this.#events[0]!.at <= now - SPAN_MS) this.#events.shift();
  }
}
