import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { ClusterNode } from '../nodes/node.js';
import { isConnectionFailure } from '../nodes/node-failure.js';
import { ProxyError } from './errors.js';
import { buildResponseHeaders, type OriginRewriter } from './headers.js';
import type { RequestBody } from './request-body.js';
import { requestIdOf } from './request-identity.js';
import { StallClock } from './stall-clock.js';
import { streamFlight, type BodyTee } from '../coalesce/blob-flights.js';
import type { AttemptDeadline, AttemptDeadlines } from './attempt-deadlines.js';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import type { ReadHandler } from '../nodes/read-pool.js';
import type { WriteBatch } from '../util/write-batch.js';

/** How far one attempt on one node got; decides whether it may be retried and what is logged. */
export type ForwardPhase =
  /** The node answered and the whole response reached the client. */
  | 'complete'
  /** Nothing reached the node (dial error, refused, connect timeout): safe to retry anywhere. */
  | 'not-sent'
  /** undici refused to send the request as the client shaped it: the client's problem, no node's. */
  | 'unsendable'
  /** The request reached the node but no response head came back. */
  | 'no-response'
  /** The response head was sent to the client and then the node failed: the client sees a cut response. */
  | 'cut'
  /** The client went away; not the node's fault. */
  | 'client-gone'
  /**
   * The node answered 502/503/504 to a request that may go elsewhere; nothing was sent to the
   * client. Its answer is held whole (`headers`, `body`) in case no other node answers.
   */
  | 'gateway-error'
  /** A 200 held back for inspection (token responses); the caller writes it or tries elsewhere. */
  | 'buffered'
  /** The caller's holdBack hook claimed the answer's head (a token refusal that may go elsewhere); nothing was sent to the client. */
  | 'held-back';

export interface ForwardOutcome {
  phase: ForwardPhase;
  /** Status sent to the client (or held back, for 'buffered' and 'held-back'), 0 when none. */
  status: number;
  bytesOut: number;
  error?: Error;
  /** Response head as it would go to the client, for 'buffered', 'held-back' and 'gateway-error'. */
  headers?: string[];
  /** The whole body, for 'buffered' and 'gateway-error'. */
  body?: Buffer;
  /** When the node's (final) response head arrived, on performance.now()'s clock; undefined when none did. */
  headAt?: number;
  /**
   * harbor-lb waited on the client for a stretch of CLIENT_STALL_MS or more during the attempt
   * (for more request body, or for it to read the response), or was waiting when it ended: a node
   * that gave up then (nginx's client_body_timeout, send_timeout) gave up on the client.
   */
  clientStalled: boolean;
}

/**
 * How a 200 is held back whole for inspection (token responses) before the client sees it. A
 * response that cannot be held is not an error: it goes to the client as it is, and `unheld` says why.
 */
export interface ResponseHold {
  /** The most held; past it, what was held goes to the client first and the rest streams after it. */
  maxBytes: number;
  /** The response went to the client without being held: larger than maxBytes, or compressed. */
  unheld(reason: 'too-large' | 'encoded', detail: string): void;
}

export interface ForwardRequest {
  node: ClusterNode;
  method: string;
  path: string;
  headers: readonly string[];
  /**
   * The headers passed request-check's `unforwardable`, as an exchange's always have: the read
   * pool then builds the head without looking at them again for what that check refused.
   * Without it, the pool refuses a head with a name that is no token, or a value that would end a
   * line early once written, before a byte of it goes out.
   */
  headersChecked?: boolean;
  body: RequestBody | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  rewriter: OriginRewriter;
  /** Time the node has to start answering. */
  headersTimeout: number;
  /** Whether a 502/503/504 should be held back (for a retry elsewhere) instead of passed on. */
  retryOnGatewayError: boolean;
  /** Hold a 200 back whole instead of streaming it (token responses, to verify before the client sees them). */
  hold?: ResponseHold;
  /**
   * Sees the response head before it goes to the client (learning upload pins). A promise holds
   * the head back until it settles: the client learns an upload's location only once its pin is stored.
   */
  onHead?: (status: number, headers: readonly string[]) => Promise<void> | void;
  /** Gets, once the request is on its way, what ends the attempt early (its node was taken out). */
  onSent?: (abort: (err: Error) => void) => void;
  /**
   * Sees each response head first; true holds it back (the rest is dropped, nothing reaches the
   * client) so the caller can send the request elsewhere. The token rules supply it.
   */
  holdBack?: (status: number, headers: readonly string[]) => boolean;
  /**
   * A blob pull others may join (coalesce.enabled): its body is teed as it passes, and its last
   * byte goes to the client only once the whole body matched its digest.
   */
  tee?: BodyTee;
  /** The time limits of requests without a body (headersTimeout, proxy.idleTimeout), instead of undici's timers. */
  deadlines?: AttemptDeadlines;
  /** Told of each chunk undici read into a buffer of its own (not the read pool's reused ones). */
  reclaimer: BufferReclaimer;
  /** Where the request's head and a small answer's end wait for the end of the turn (write-batch.ts); without one, they go out at once. */
  writes?: WriteBatch;
}

const CLIENT_GONE = 'CLIENT_GONE' as const;
/**
 * The largest last chunk whose write waits for the end of the turn (copied, 16 KiB: manifests,
 * tokens, API answers). A larger one goes out at once: it is a blob's, whose writes are few and
 * large, and a copy would cost more than it saves.
 */
const HELD_END_MAX = 16 * 1024;
/**
 * The largest such chunk that ends its response as a latin1 string (onData), 4 KiB. A string
 * costs three copies (into the string, joined to the head, into the write) where a Buffer costs
 * one, and saves node:http's second chunk and writev: counted, 7.2k fewer instructions for a
 * 2 KiB body, 5.6k fewer for 4 KiB, 3.4k more for 8 KiB (docs/benchmarks.md).
 */
const STRING_END_MAX = 4 * 1024;

/**
 * One attempt on one node. Streams the client's body up and the node's body down with
 * backpressure both ways (res.write() false pauses the node's response; 'drain' resumes it), never
 * buffering. The steps are those the read pool drives (onConnect, onHeaders, onData,
 * onComplete, onError: ReadHandler); undici's own handler API reaches them through thin adapters.
 */
export function forward(fr: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    new ProxyHandler(fr, resolve).dispatch();
  });
}

class ProxyHandler implements Dispatcher.DispatchHandler, ReadHandler {
  #abort: ((err?: Error) => void) | undefined;
  #sent = false;
  #headersWritten = false;
  #clientGone = false;
  #done = false;
  #bytesOut = 0;
  #status = 0;
  #headAt: number | undefined;
  #resume: (() => void) | undefined;
  /** A 200 held for inspection (fr.hold), or a gateway error held for a retry elsewhere (`gateway`). */
  #held: { headers: string[]; statusText: string; chunks: Buffer[]; size: number; max: number; gateway: boolean } | undefined;
  #gatewayTimer: NodeJS.Timeout | undefined;
  /** The flight this pull leads, once its 200 began one; and the body's last byte, held until the digest matched. */
  #tee: BodyTee | undefined;
  #lastByte: Buffer | undefined;
  /**
   * The leading client fell behind (its response would not take more): it reads the rest from the
   * spill file like a joined client, while the node's body goes on into the file at the node's pace.
   */
  #fromFile: Promise<'ok' | 'failed' | 'gone'> | undefined;
  /** The leading client left while others read its flight: the node's body goes on into the file for them. */
  #orphaned = false;
  /** Pauses of the node's response while the client had not read what it was sent. */
  readonly #readerStalls = new StallClock();
  /** The node's time limits, when fr.deadlines keeps them (requests without a body). */
  #ownTimers = false;
  #deadline: AttemptDeadline | undefined;

  constructor(
    private readonly fr: ForwardRequest,
    private readonly resolve: (o: ForwardOutcome) => void,
  ) {}

  dispatch(): void {
    const { fr } = this;
    // The client may have left while a node was being chosen: its 'close' has fired already.
    if (fr.res.destroyed) {
      this.#clientGone = true;
      this.#finish('client-gone', new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
      return;
    }
    fr.res.on('close', this.#onClientClose);
    fr.body?.stalls.reset();
    // Without a body, the time limits are kept here (AttemptDeadlines); with one, undici's, which
    // also count the body's progress as the node's.
    this.#ownTimers = fr.deadlines !== undefined && fr.body === undefined;
    // A GET or HEAD goes through the node's read pool (reused read buffers, and less work per
    // request than undici's dispatch).
    const { method } = fr;
    if (fr.body === undefined && (method === 'GET' || method === 'HEAD')) {
      fr.node.reads.dispatch({ method, path: fr.path, headers: fr.headers, headersChecked: fr.headersChecked, headersTimeout: this.#ownTimers ? 0 : fr.headersTimeout, writes: fr.writes }, this);
      return;
    }
    // A body streamed from the client may take as long as the client likes: it has its own budget.
    const pool = fr.body !== undefined && fr.body.buffered === undefined ? fr.node.uploadPool : fr.node.pool;
    pool.dispatch(
      {
        path: fr.path,
        method: fr.method,
        // undici's type asks for a mutable array; it only reads it.
        headers: fr.headers as string[],
        body: fr.body ? (fr.body.source() as unknown as Dispatcher.DispatchOptions['body']) : null,
        // A request with a body is never replayed by undici itself; retry policy is ours.
        idempotent: fr.body === undefined && (fr.method === 'GET' || fr.method === 'HEAD'),
        blocking: true,
        headersTimeout: this.#ownTimers ? 0 : fr.headersTimeout,
        ...(this.#ownTimers ? { bodyTimeout: 0 } : {}),
      },
      this,
    );
  }

  readonly #onClientClose = (): void => {
    if (this.fr.res.writableFinished) return;
    this.#clientGone = true;
    const flight = this.#tee?.flight();
    // Readers in other request workers are not counted here: a flight they were told of is read on for them.
    if (flight !== undefined && flight.state === 'open' && (flight.shared || flight.readers - (this.#fromFile === undefined ? 0 : 1) > 0)) {
      // Clients joined this pull: their bytes keep coming from the node; this client's leaving ends nothing else.
      this.#orphaned = true;
      return;
    }
    this.#abort?.(new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
  };

  /** The response was ended with the answer's last chunk (onData's `last`). */
  #endedWith = false;

  /** Inside undici's onData: a 'drain' emitted from a write there must not resume undici from within its parser. */
  #inData = false;

  /**
   * The response's 'drain' listener: put on only once a write of this attempt's returned false
   * (node:http emits 'drain' only after one did), so an answer that never waits on its client
   * adds and removes none; 'off' once its client reads the rest from a flight's file.
   */
  #drainWatch: 'none' | 'on' | 'off' = 'none';

  #watchDrain(): void {
    if (this.#drainWatch !== 'none') return;
    this.#drainWatch = 'on';
    this.fr.res.on('drain', this.#onDrain);
  }

  readonly #onDrain = (): void => {
    this.#readerStalls.end();
    if (this.#deadline !== undefined) {
      this.#deadline.paused = false;
      this.#deadline.seen = true;
    }
    if (this.#inData) queueMicrotask(() => this.#resume?.());
    else this.#resume?.();
  };

  // ---- undici's handler API (v2): each callback is one of the steps below --------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.onConnect((err) => controller.abort(err!));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusText?: string): void {
    // The node's header lines as sent: they are rewritten one by one, never through an object.
    const raw = controller.rawHeaders;
    const lines = Array.isArray(raw) ? raw : Object.entries(raw ?? {}).flatMap(([name, v]) => (Array.isArray(v) ? v.flatMap((x) => [name, x]) : [name, String(v)]));
    if (!this.onHeaders(statusCode, lines, () => controller.resume(), statusText ?? '')) controller.pause();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.onData(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.onComplete();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.onError(err);
  }

  // ---- the steps of an attempt -----------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.#sent = true;
    // From here, as undici's own headers timer: the request is going out on a connection.
    if (this.#ownTimers) this.#deadline = this.fr.deadlines!.watch(this.fr.headersTimeout, abort);
    this.fr.onSent?.((err) => abort(err));
    if (this.#clientGone) abort(new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
  }

  onHeaders(statusCode: number, rawHeaders: readonly (Buffer | string)[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: node:http already told the client to continue
    this.#headAt = performance.now();
    this.#deadline?.headed();
    const { res, rewriter } = this.fr;
    // Gone, or already answered by the proxy itself (a client cut for a too slow body).
    if (res.destroyed || res.writableEnded) return this.#clientLeft();
    const headers = buildResponseHeaders(rawHeaders, rewriter);
    // The request's own id goes back to the client (buildResponseHeaders dropped the node's echo).
    const requestId = requestIdOf(res);
    if (requestId !== undefined) headers.push('x-request-id', requestId);
    this.#status = statusCode;
    this.#resume = resume;
    // A HEAD's Content-Length is the GET's: there is no body to hold.
    if (this.fr.retryOnGatewayError && statusCode >= 502 && statusCode <= 504 && (this.fr.method === 'HEAD' || !declaredOver(headers, GATEWAY_HOLD_BYTES))) {
      // Held whole rather than dropped: should no other node answer after all, the client gets this
      // one. Its body gets a moment, not the node's idle timeout: a retry elsewhere must not wait on a drip.
      this.#held = { headers, statusText, chunks: [], size: 0, max: GATEWAY_HOLD_BYTES, gateway: true };
      this.#gatewayTimer = setTimeout(this.#gatewayBodyLate, GATEWAY_BODY_MS);
      return true;
    }
    if (this.fr.holdBack?.(statusCode, headers)) {
      this.#finish('held-back', undefined, headers);
      this.#abort?.(new ProxyError('ANSWER_HELD_BACK', statusCode, `node answered ${statusCode}; held back`));
      return false;
    }
    const stored = this.fr.onHead?.(statusCode, headers);
    if (stored !== undefined) {
      // Paused (false) until the pin is stored; then the head goes out and the node is read on.
      void stored.then(() => {
        // The attempt may have ended meanwhile (the node failed, or was taken out): then nothing goes out.
        if (this.#done || this.#clientGone || this.fr.res.destroyed) return;
        this.#writeHead(statusCode, statusText, headers);
        resume();
      });
      return false;
    }
    const hold = statusCode === 200 ? this.fr.hold : undefined;
    if (hold) {
      const cannot = unholdable(headers, hold.maxBytes);
      if (cannot === undefined) {
        this.#held = { headers, statusText, chunks: [], size: 0, max: hold.maxBytes, gateway: false };
        return true;
      }
      hold.unheld(cannot.reason, cannot.detail);
    }
    if (this.fr.tee?.head(statusCode, headers) === true) this.#tee = this.fr.tee;
    this.#writeHead(statusCode, statusText, headers);
    return true;
  }

  #writeHead(statusCode: number, statusText: string, headers: string[]): void {
    const { res } = this.fr;
    res.writeHead(statusCode, statusText || undefined, headers);
    this.#headersWritten = true;
  }

  /**
   * `written` (the read pool's): called once the chunk is out, so the buffer it is a view
   * into may be read into again; a chunk kept (held, or the client gone) never calls it.
   */
  onData(chunk: Buffer, written?: () => void, last = false): boolean {
    this.#deadline?.data();
    // undici hands over an empty rest after every resume (each 64 KiB of a blob): written, each
    // became a write() system call of nothing, one per chunk pulled.
    if (chunk.length === 0) {
      written?.();
      if (!this.fr.res.writableNeedDrain) return true;
      this.#watchDrain();
      // Paused for the client: that wait is not the node's.
      if (this.#deadline !== undefined) this.#deadline.paused = true;
      return false;
    }
    if (written === undefined) this.fr.reclaimer.allocated(chunk.length);
    const held = this.#held;
    if (held) {
      if (held.size + chunk.length <= held.max) {
        held.size += chunk.length;
        // A view into the read pool's buffer is copied, so the buffer goes back at once.
        if (written === undefined) held.chunks.push(chunk);
        else {
          held.chunks.push(Buffer.from(chunk));
          written();
        }
        return true;
      }
      // Larger than any token response we verify: the client gets it as it is, unverified. Not the
      // node's failure (a client asking for enough scopes makes one); the hook counts it. A gateway
      // error that large is passed on too, and not retried.
      this.#held = undefined;
      if (!held.gateway) this.fr.hold!.unheld('too-large', `response over ${held.max} bytes`);
      this.#writeHead(this.#status, held.statusText, held.headers);
      for (const c of held.chunks) {
        this.#bytesOut += c.length;
        if (!this.fr.res.write(c)) this.#watchDrain();
      }
    }
    if (this.#orphaned) {
      this.#tee!.data(chunk);
      written?.();
      return true;
    }
    // A write to a destroyed response never drains: that is the client leaving, not a pause.
    if (this.fr.res.destroyed) return this.#clientLeft();
    if (this.#tee !== undefined) {
      this.#tee.data(chunk);
      if (this.#fromFile !== undefined) {
        // In the file already (a synchronous write): the read buffer is free, the node goes on.
        written?.();
        return true;
      }
      // The last byte of the body (when this chunk ends it) waits for the digest check in onComplete.
      if (this.#tee.last(chunk.length)) {
        this.#lastByte = Buffer.from(chunk.subarray(chunk.length - 1));
        chunk = chunk.subarray(0, chunk.length - 1);
        if (chunk.length === 0) {
          written?.();
          return true;
        }
      }
    }
    this.#bytesOut += chunk.length;
    if (last && this.#tee === undefined) {
      // The answer's last bytes (a small GET's whole body): the response ends with them, its head
      // and body in one write, rather than a write corked until the next tick and an end after it.
      this.#endedWith = true;
      const { res, writes } = this.fr;
      if (writes !== undefined && chunk.length <= HELD_END_MAX) {
        // A small answer goes out with the turn's other writes (write-batch.ts). A copy waits, so
        // the read buffer it is a view into goes back at once. Up to STRING_END_MAX the copy is a
        // latin1 string (byte for byte): node:http joins a string to a head it has not sent yet and
        // writes the two as one string, where a Buffer goes out as a second chunk of a writev.
        const copy = chunk.length <= STRING_END_MAX ? chunk.toString('latin1') : written === undefined ? chunk : Buffer.from(chunk);
        written?.();
        writes.later(() => (typeof copy === 'string' ? res.end(copy, 'latin1') : res.end(copy)));
      } else if (written === undefined) res.end(chunk);
      // As for a write: only a chunk written out gives its buffer back (end's callback also hears a failed flush).
      else res.end(chunk, (err?: Error | null) => (err === undefined || err === null ? written() : undefined));
      return true;
    }
    // Backpressure: false pauses undici until 'drain' (this covers the flushed chunks too).
    this.#inData = true;
    const flowing = written === undefined ? this.fr.res.write(chunk) : this.fr.res.write(chunk, (err) => err === undefined || err === null ? written() : undefined);
    this.#inData = false;
    if (flowing) return true;
    const flight = this.#tee?.flight();
    if (flight !== undefined && flight.state === 'open') {
      // Others may be waiting on this read: the node is not paused for this client, which reads the rest from the file.
      if (this.#drainWatch === 'on') this.fr.res.off('drain', this.#onDrain);
      this.#drainWatch = 'off';
      flight.attach();
      // Never rejects (a read of the file that fails is the client's cut, not a crash).
      this.#fromFile = streamFlight(flight, this.fr.res, this.#bytesOut, (n) => (this.#bytesOut += n))
        .catch((): 'failed' => {
          this.fr.res.destroy();
          return 'failed';
        })
        .finally(() => flight.detach());
      return true;
    }
    this.#watchDrain();
    this.#readerStalls.begin();
    if (this.#deadline !== undefined) this.#deadline.paused = true;
    return false;
  }

  #clientLeft(): false {
    this.#clientGone = true;
    this.#abort?.(new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
    return false;
  }

  onComplete(): void {
    if (this.#orphaned) {
      this.#tee!.end();
      return this.#finish('client-gone');
    }
    const held = this.#held;
    if (held) return this.#finish(held.gateway ? 'gateway-error' : 'buffered', undefined, held.headers, Buffer.concat(held.chunks, held.size));
    if (this.#tee !== undefined && !this.#tee.end()) {
      // The node's blob is not the one its digest names: the client sees a cut, never a wrong blob.
      this.fr.res.destroy();
      return this.#finish('cut', new ProxyError('BLOB_DIGEST_MISMATCH', 502, 'the blob the node sent does not match its digest'));
    }
    if (this.#fromFile !== undefined) {
      // The node is done; the client gets the rest from the file at its pace, then the attempt ends.
      void this.#fromFile.then((r) => (r === 'ok' ? this.#finish('complete') : this.#finish('client-gone')));
      return;
    }
    if (this.#lastByte !== undefined) {
      this.#bytesOut += 1;
      this.fr.res.end(this.#lastByte);
    } else if (!this.#endedWith) {
      // A body that came without `last` (undici's, or none: a HEAD, a 204, a 304) ends with the turn's other writes.
      const { res, writes } = this.fr;
      if (writes === undefined) res.end();
      else writes.later(() => res.end());
    }
    this.#finish('complete');
  }

  onError(err: Error): void {
    if (this.#done) return;
    this.#tee?.fail();
    if (this.#orphaned) return this.#finish('client-gone', err);
    if (this.#fromFile !== undefined && !this.#clientGone) {
      // The node's answer was cut: the file reader cuts the client when it reaches the end of what came.
      void this.#fromFile.then(() => this.#finish('cut', err));
      return;
    }
    const { res, body } = this.fr;
    if (this.#clientGone || body?.clientFailed || (err as ProxyError).code === CLIENT_GONE) {
      // An answer the proxy already wrote (408 for a too slow body) is left to flush.
      if (!res.destroyed && !res.writableEnded) res.destroy();
      this.#finish('client-gone', err);
    } else if (this.#held?.gateway === true) {
      // The node cut the body of the 5xx it answered: still a gateway error, only without an answer to keep.
      this.#finish('gateway-error', err);
    } else if (this.#headersWritten) {
      // Never end cleanly: the client must see the body was cut, not a short "complete" blob.
      // Destroyed without the node's error: with one, node:http reports it as the client's
      // connection error ('clientError'), and the node's cut was logged as a client rejection.
      res.destroy();
      this.#finish('cut', err);
    } else if (this.#sent) {
      this.#finish('no-response', err);
    } else {
      this.#finish(isConnectionFailure(err) ? 'not-sent' : 'unsendable', err);
    }
  }

  /** A held gateway error's body did not come in time: the attempt ends without it (harbor-lb answers in its stead if need be). */
  readonly #gatewayBodyLate = (): void => {
    if (this.#done || this.#held?.gateway !== true) return;
    this.#held = undefined;
    this.#finish('gateway-error');
    this.#abort?.(new ProxyError('GATEWAY_ERROR_RETRIED', this.#status, `node answered ${this.#status}; its body was too slow to keep`));
  };

  #finish(phase: ForwardPhase, error?: Error, headers?: string[], body?: Buffer): void {
    if (this.#done) return;
    this.#done = true;
    this.#deadline?.done();
    if (this.#gatewayTimer !== undefined) clearTimeout(this.#gatewayTimer);
    const { res } = this.fr;
    res.off('close', this.#onClientClose);
    if (this.#drainWatch === 'on') res.off('drain', this.#onDrain);
    const clientStalled = this.#readerStalls.stalled() || (this.fr.body?.stalls.stalled() ?? false);
    this.resolve({ phase, status: this.#status, bytesOut: this.#bytesOut, error, headers, body, headAt: this.#headAt, clientStalled });
  }
}

/** Most of a 502/503/504 held for a retry elsewhere: registries' and proxies' error bodies are far smaller. */
const GATEWAY_HOLD_BYTES = 64 * 1024;
/** How long a held 502/503/504's body may take after its head (it normally comes with it). */
const GATEWAY_BODY_MS = 1_000;

/** The head declares a body longer than `max` bytes. */
function declaredOver(headers: string[], max: number): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === 'content-length') return Number(headers[i + 1]!.trim()) > max;
  }
  return false;
}

/**
 * Why a response cannot be held for inspection: compressed (the proxy asked for identity; a node
 * that compresses anyway is passed through rather than inflated here), or declared larger than the cap.
 */
function unholdable(headers: string[], maxBytes: number): { reason: 'too-large' | 'encoded'; detail: string } | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const value = headers[i + 1]!.trim();
    if (name === 'content-encoding' && value !== '' && value.toLowerCase() !== 'identity') {
      return { reason: 'encoded', detail: `content-encoding ${value.slice(0, 40)}` };
    }
    if (name === 'content-length' && Number(value) > maxBytes) {
      return { reason: 'too-large', detail: `content-length ${value} over ${maxBytes} bytes` };
    }
  }
  return undefined;
}
