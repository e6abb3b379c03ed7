import { appendFileSync } from 'node:fs';
import { LatencyRecorder, Tally } from './stats.js';

export interface Target {
  name: string;
  port: number;
}

/** An image a user pushed completely; any user may pull it afterwards. */
export interface PushedImage {
  repo: string;
  tag: string;
  manifestDigest: string;
  blobs: string[];
}

export interface UnretryableError {
  t: number;
  user: string;
  op: string;
  step: string;
  attempts: number;
  message: string;
}

export type OpKind = 'push' | 'pull' | 'login' | 'ui';
export const OP_KINDS: readonly OpKind[] = ['push', 'pull', 'login', 'ui'];

export interface OpCount {
  started: number;
  ok: number;
  failed: number;
  /** In progress when the run ended and abandoned on purpose. */
  abandoned: number;
}

export interface FaultRecord {
  name: string;
  /** The node the fault hits, if it hits one: that node may leave the path during the fault. */
  node?: string;
  plannedAtS: number;
  startS?: number;
  endS?: number;
  detail: string;
}

/** Everything the parts of a run share: where to send traffic, what happened so far, the clock. */
export class SoakContext {
  readonly latency = new LatencyRecorder();
  readonly ops = new Map<OpKind, OpCount>(OP_KINDS.map((k) => [k, { started: 0, ok: 0, failed: 0, abandoned: 0 }]));
  /** Requests answered, by "route status". */
  readonly requests = new Tally();
  /** Requests that got no complete answer, by error code. */
  readonly transportErrors = new Tally();
  /** Retries, by "op/step: reason". */
  readonly retries = new Tally();
  /** When each retry happened (first 10 000), to match them with the faults. */
  readonly retryTimes: number[] = [];
  readonly unretryable: UnretryableError[] = [];
  readonly images: PushedImage[] = [];
  readonly faults: FaultRecord[] = [];
  /** The misbehaving clients' outcomes, by what they were answered. */
  readonly slowBody = new Tally();
  readonly slowBodyCuts: Array<{ t: number; instance: string; afterS: number; outcome: string }> = [];
  readonly duplicateHost = new Tally();
  /** The hostile client's answers, by shape, then by what it was answered. */
  readonly hostile = new Map<string, Tally>();
  /** What the hostile client needed for its shapes (a token, a blob of its own), by outcome. */
  readonly hostileSetup = new Tally();
  /** Each slowly read pull of the hostile client (first 1000). */
  readonly hostileSlowReads: Array<{ t: number; instance: string; afterS: number; outcome: string }> = [];
  readonly startedAt = Date.now();
  constructor(
    readonly targets: Target[],
    /** What clients type (both instances' publicUrl), sent as Host; DNS "resolves" it to either instance. */
    readonly publicUrl: string,
    readonly outFile: string,
    /** No new operation starts after this (epoch ms). */
    readonly deadline: number,
    /** Aborted to abandon whatever is still in flight. */
    readonly signal: AbortSignal,
    /** Retries a client allows itself for one step before giving up. */
    readonly maxRetries: number,
  ) {}

  /** Seconds since the run started. */
  t(): number {
    return Math.round((Date.now() - this.startedAt) / 100) / 10;
  }

  get hostHeader(): string {
    return new URL(this.publicUrl).host;
  }

  /** Appends one raw record to the JSON lines file. */
  emit(type: string, data: Record<string, unknown>): void {
    appendFileSync(this.outFile, `${JSON.stringify({ type, t: this.t(), ...data })}\n`);
  }

  /** Counts one answer the hostile client got for one of its shapes. */
  hostileAnswer(shape: string, outcome: string): void {
    let t = this.hostile.get(shape);
    if (t === undefined) this.hostile.set(shape, (t = new Tally()));
    t.add(outcome);
  }

  rememberImage(img: PushedImage): void {
    this.images.push(img);
    if (this.images.length > 256) this.images.splice(0, this.images.length - 256);
  }

  totals(): { ops: number; ok: number; failed: number; retries: number; unretryable: number; requests: number } {
    let ops = 0;
    let ok = 0;
    let failed = 0;
    for (const c of this.ops.values()) {
      ops += c.started;
      ok += c.ok;
      failed += c.failed;
    }
    return { ops, ok, failed, retries: this.retries.total, unretryable: this.unretryable.length, requests: this.requests.total };
  }
}
