import type { AttemptVerdict } from '../health/outlier-detector.js';
import type { FromWorker, NodeRef, PinOp, SharedVerdict, ToWorker } from './messages.js';
import type { FlightBus } from '../coalesce/blob-flights.js';
import type { CacheShare } from '../coalesce/blob-cache.js';
import type { Suspicion } from '../token/token-guard.js';

/** How long a worker waits for the control plane to answer a pin operation before routing without it. */
const PIN_TIMEOUT_MS = 1000;
/** A node's good tokens are said to the control plane at most this often: what matters is that it issues them. */
const GOOD_ISSUER_EVERY_MS = 5_000;
/**
 * Attempt verdicts wait at most this long to go to the control plane together. The control plane
 * orders evidence from all workers by when it arrives, so the window bounds how far one worker's
 * answers can land behind another's. 50 ms saved ~1% of a worker's CPU under small GETs, but one CI
 * run with it logged a shared storage failure twice (two cluster_degraded lines; not reproduced in
 * 4 runs by hand): kept at 10 ms, the value every earlier run passed with.
 */
const VERDICT_BATCH_MS = 10;

/**
 * After a worker sends a failure of a node, it sends that node's good answers for this long
 * whatever the mirror says, so its own failures and answers reach passive detection in the order
 * they came (the mirror that wants them arrives a round trip later).
 */
const OWN_FAILURE_WANTS_MS = 1_000;

/** The channel to the control plane, as a worker's parts use it: evidence out, pin operations answered. */
export interface ControlLink {
  /** What an attempt said about its node (passive detection runs in the control plane). */
  verdict(node: NodeRef, v: AttemptVerdict): void;
  /** A request waited long for its node's answer: the control plane checks the node. */
  slowAnswer(node: NodeRef): void;
  /** Client traffic pointed at a node's tokens: the control plane probes it. */
  suspect(node: NodeRef, why?: Suspicion): void;
  /** A client got a good token from the node: the control plane's quarantines wait for such a node. */
  goodIssuer(node: NodeRef): void;
  /** A token verified good here: the other workers take it as verified too (client identity is the same whichever worker serves). */
  verified(v: SharedVerdict): void;
  /** A UI request with a CSRF cookie was refused: the control plane runs the CSRF key check. */
  csrfSuspected(): void;
  /** A pin operation on the control plane's memory store; undefined when it did not answer in time. */
  pin(op: PinOp): Promise<unknown>;
  /** Blob flights shared between workers (coalesce.enabled). */
  readonly flights: FlightBus;
  /** The host's blob cache (cache.dir): blobs this worker added (the control plane evicts) or saw match its digest. */
  readonly cache: CacheShare;
}

/** Where a worker's messages go: process.send in a forked worker. */
export type Send = (msg: FromWorker) => void;

/**
 * The worker's end of its IPC channel. Verdicts are sent in batches, so a busy worker sends at
 * most one message per batch window. Good answers go only for the nodes whose good answers
 * passive detection waits for (`want`, from the control plane's mirror), or that this worker saw
 * fail within OWN_FAILURE_WANTS_MS: in a healthy cluster a busy worker sends no verdicts at all.
 * Between two failures a node's good answers on a route collapse to one (passive detection needs
 * the order of failures and successes, not every success).
 */
export class ProcessControlLink implements ControlLink {
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; timer: NodeJS.Timeout }>();
  #batch: Array<[NodeRef, AttemptVerdict]> = [];
  #batchTimer: NodeJS.Timeout | undefined;
  /** The good answers in the batch since its last failure, by node (as the worker holds it) and route. */
  readonly #answeredSince = new Map<NodeRef, Set<string>>();
  readonly #goodIssuerSaid = new Map<string, number>();
  /** Nodes whose good answers the control plane wants; undefined (all) until it first says. */
  #wanted: ReadonlySet<string> | undefined;
  /** Until when this worker sends a node's good answers after it sent a failure of it, by name. */
  readonly #ownFailures = new Map<string, number>();
  /** Pin operations the control plane did not answer in time, since start. */
  timeouts = 0;

  constructor(
    private readonly send: Send,
    private readonly now: () => number = Date.now,
  ) {}

  /** The nodes whose good answers the control plane wants, from its mirror (NodeMirror.answersWanted). */
  want(names: readonly string[]): void {
    this.#wanted = new Set(names);
  }

  verdict(node: NodeRef, v: AttemptVerdict): void {
    if (v.kind === 'answered') {
      if (this.#wanted !== undefined && !this.#wanted.has(node.name) && !this.#sawFail(node.name)) return;
      // Good answers commute (each clears its own node's count and its route's cluster failure):
      // since the last failure in the batch, one per node and route says all of them.
      const routes = this.#answeredSince.get(node);
      if (routes?.has(v.route)) return;
      if (routes === undefined) this.#answeredSince.set(node, new Set([v.route]));
      else routes.add(v.route);
    } else {
      this.#answeredSince.clear();
      this.#ownFailures.set(node.name, this.now() + OWN_FAILURE_WANTS_MS);
    }
    this.#batch.push([{ name: node.name, url: node.url }, v]);
    this.#batchTimer ??= setTimeout(() => this.flush(), VERDICT_BATCH_MS);
  }

  /** Sends the verdicts waiting (before any message that must come after them). */
  flush(): void {
    if (this.#batchTimer) clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    if (this.#batch.length === 0) return;
    const items = this.#batch;
    this.#batch = [];
    this.#answeredSince.clear();
    this.send({ t: 'verdicts', items });
  }

  #sawFail(name: string): boolean {
    if (this.#ownFailures.size === 0) return false;
    const until = this.#ownFailures.get(name);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.#ownFailures.delete(name);
    return false;
  }

  slowAnswer(node: NodeRef): void {
    this.flush();
    this.send({ t: 'slow', node: { name: node.name, url: node.url } });
  }

  suspect(node: NodeRef, why?: Suspicion): void {
    this.flush();
    this.send(why === undefined ? { t: 'suspect', node: { name: node.name, url: node.url } } : { t: 'suspect', node: { name: node.name, url: node.url }, why });
  }

  goodIssuer(node: NodeRef): void {
    const now = Date.now();
    const key = `${node.name} ${node.url}`;
    if (now - (this.#goodIssuerSaid.get(key) ?? -Infinity) < GOOD_ISSUER_EVERY_MS) return;
    this.#goodIssuerSaid.set(key, now);
    this.send({ t: 'good-issuer', node: { name: node.name, url: node.url } });
  }

  verified(v: SharedVerdict): void {
    this.send({ t: 'verified', ...v });
  }

  csrfSuspected(): void {
    this.send({ t: 'csrf' });
  }

  readonly flights: FlightBus = {
    // No answer in time: lead (one more read from a node is the worst it costs).
    claim: async (digest) => ((await this.#ask((id) => ({ t: 'flight-claim', id, digest }))) === 'elsewhere' ? 'elsewhere' : 'lead'),
    started: (flight) => this.send({ t: 'flight-started', flight }),
    settled: (digest, ok) => this.send({ t: 'flight-settled', digest, ok }),
    closed: (digest) => this.send({ t: 'flight-closed', digest }),
  };

  readonly cache: CacheShare = {
    added: (digest, size) => this.send({ t: 'cache-added', digest, size }),
    verified: (digest) => this.send({ t: 'cache-verified', digest }),
  };

  pin(op: PinOp): Promise<unknown> {
    return this.#ask((id) => ({ t: 'pin', id, pin: op }));
  }

  #ask(message: (id: number) => FromWorker): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.timeouts++;
        resolve(undefined);
      }, PIN_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(id, { resolve, timer });
      this.send(message(id));
    });
  }

  /** An answer from the control plane (to a pin operation). */
  answered(msg: Extract<ToWorker, { t: 'answer' }>): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) return;
    this.#pending.delete(msg.id);
    clearTimeout(p.timer);
    p.resolve(msg.value);
  }

  close(): void {
    this.flush();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
    this.#pending.clear();
  }
}
