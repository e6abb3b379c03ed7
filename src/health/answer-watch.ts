import type { ClusterNode } from '../nodes/node.js';
import type { Clock } from '../util/clock.js';
import { TickingSet, type Ticked } from '../util/ticking-set.js';

/** A request waiting this long on its node for its answer's head makes harbor-lb check the node. */
export const SLOW_ANSWER_MS = 2000;
const TICK_MS = 500;

/** A request body streaming to the node: what tells the node's time from the client's. */
export interface StreamedBody {
  /** Grows each time the node's side takes a chunk and asks for the next. */
  readonly taken: number;
  /** The node waits for the client's next bytes now. */
  readonly waiting: boolean;
}

interface Waiting extends Ticked {
  node: ClusterNode;
  /** When the wait on the node began: the attempt's start, or the node's last progress with a body. */
  since: number;
  body: StreamedBody | undefined;
  taken: number;
  suspected: boolean;
  /** Ends the attempt so it can go to another node (only attempts that may be sent again). */
  abort: (() => void) | undefined;
}

/**
 * Attempts waiting for a node's answer. A hung node takes connections and never answers: its
 * requests would only fail after proxy.headersTimeout (60 s), and so would its first failed
 * request. Instead, an attempt that has waited SLOW_ANSWER_MS asks for a check of its node (only
 * suspicion: the check decides), and when the node is taken out, the attempts still waiting on
 * it that may be sent again (body-less reads, nothing of the answer received) end at once and go
 * to another node. An upload cannot go elsewhere and is left to its node: how much of its body
 * the node has read, harbor-lb cannot tell (undici takes the next chunk only once megabytes of
 * socket buffers have drained), so a node that reads slowly would look like one that stopped.
 *
 * While a request body streams, the wait is the node's only when it neither takes the body nor
 * waits for the client: a client slow to send never makes harbor-lb check a healthy node, and a
 * node that stops reading an upload (a hung one) is checked 2 s after it took its last chunk (once
 * the socket buffers on the way are full). One timer for all, ticking only while something waits.
 */
export class AnswerWatch {
  readonly #waiting: TickingSet<Waiting>;

  constructor(
    private readonly clock: Clock,
    private readonly suspect: (node: ClusterNode) => void,
  ) {
    this.#waiting = new TickingSet(clock, TICK_MS, (waiting) => this.#tick(waiting));
  }

  /** An attempt was sent (its body streams on, if any); the function returned says its answer's head came (or the attempt ended). */
  begin(node: ClusterNode, abort: (() => void) | undefined, body?: StreamedBody): () => void {
    return this.#waiting.add({ node, since: this.clock.now(), body, taken: body?.taken ?? 0, suspected: false, abort, tickIndex: -1 });
  }

  /** The node was taken out: its waiting attempts that may go elsewhere do. */
  nodeOut(node: ClusterNode): void {
    for (const w of this.#waiting.held()) {
      if (w.node !== node || w.abort === undefined) continue;
      this.#waiting.delete(w);
      w.abort();
    }
  }

  stop(): void {
    this.#waiting.stop();
  }

  #tick(waiting: Iterable<Waiting>): void {
    const now = this.clock.now();
    for (const w of waiting) {
      const { body } = w;
      if (body !== undefined && (body.waiting || body.taken !== w.taken)) {
        // The node took more of the body, or waits for the client: none of this wait is the node's,
        // and a later stall of this long upload may ask for a check again.
        w.taken = body.taken;
        w.since = now;
        w.suspected = false;
        continue;
      }
      if (w.suspected || now - w.since < SLOW_ANSWER_MS) continue;
      w.suspected = true;
      this.suspect(w.node);
    }
  }
}
