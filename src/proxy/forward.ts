import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { ClusterNode } from '../nodes/node.js';
import { ProxyError } from './errors.js';
import { buildResponseHeaders, type OriginRewriter } from './headers.js';

/** How far one attempt on one node got; decides whether it may be retried and what is logged. */
export type ForwardPhase =
  /** The node answered and the whole response reached the client. */
  | 'complete'
  /** Nothing reached the node (dial error, refused, connect timeout): safe to retry anywhere. */
  | 'not-sent'
  /** The request reached the node but no response head came back. */
  | 'no-response'
  /** The response head was sent to the client and then the node failed: the client sees a cut response. */
  | 'cut'
  /** The client went away; not the node's fault. */
  | 'client-gone';

export interface ForwardOutcome {
  phase: ForwardPhase;
  /** Status sent to the client, 0 when none was. */
  status: number;
  bytesOut: number;
  error?: Error;
}

/** The request body as seen by undici, counting bytes and telling whether any was read. */
export class RequestBody {
  bytes = 0;
  /** Set once undici starts reading; an untouched body can still be sent to another node. */
  touched = false;
  /** The client failed while sending it (hung up mid-upload). */
  clientFailed = false;

  constructor(private readonly req: IncomingMessage) {}

  /** A fresh iterable over the client's body; pulled by undici only as fast as the node takes it. */
  iterable(): AsyncIterable<Buffer> {
    const self = this;
    return (async function* () {
      self.touched = true;
      try {
        for await (const chunk of self.req) {
          self.bytes += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      } catch (err) {
        self.clientFailed = true;
        throw err;
      }
    })();
  }
}

export interface ForwardRequest {
  node: ClusterNode;
  method: string;
  path: string;
  headers: string[];
  body: RequestBody | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  rewriter: OriginRewriter;
  /** Lets the caller look at a response head before it is written (token inspection, passive health). */
  onResponseHead?: (status: number, headers: string[]) => void;
}

const CLIENT_GONE = 'CLIENT_GONE';

/**
 * One attempt on one node. Streams the client's body up and the node's body down with
 * backpressure both ways (res.write() false pauses undici; 'drain' resumes it), never buffering.
 * Uses undici's native handler callbacks: its newer controller API wraps them and parses headers
 * into an object that the proxy would only turn back into an array.
 */
export function forward(fr: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    new ProxyHandler(fr, resolve).dispatch();
  });
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  #abort: ((err?: Error) => void) | undefined;
  #sent = false;
  #headersWritten = false;
  #clientGone = false;
  #done = false;
  #bytesOut = 0;
  #status = 0;
  #resume: (() => void) | undefined;

  constructor(
    private readonly fr: ForwardRequest,
    private readonly resolve: (o: ForwardOutcome) => void,
  ) {}

  dispatch(): void {
    const { fr } = this;
    fr.res.on('close', this.#onClientClose);
    fr.node.pool.dispatch(
      {
        path: fr.path,
        method: fr.method,
        headers: fr.headers,
        body: fr.body ? (fr.body.iterable() as unknown as Dispatcher.DispatchOptions['body']) : null,
        // A request with a body is never replayed by undici itself; retry policy is ours.
        idempotent: fr.body === undefined && (fr.method === 'GET' || fr.method === 'HEAD'),
        blocking: true,
      },
      this,
    );
  }

  readonly #onClientClose = (): void => {
    if (this.fr.res.writableFinished) return;
    this.#clientGone = true;
    this.#abort?.(new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
  };

  readonly #onDrain = (): void => {
    this.#resume?.();
  };

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.#sent = true;
    if (this.#clientGone) abort(new ProxyError(CLIENT_GONE, 499, 'client closed the connection'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: node:http already told the client to continue
    const { res, rewriter, onResponseHead } = this.fr;
    const headers = buildResponseHeaders(rawHeaders, rewriter);
    onResponseHead?.(statusCode, headers);
    this.#status = statusCode;
    this.#resume = resume;
    res.on('drain', this.#onDrain);
    res.writeHead(statusCode, statusText || undefined, headers);
    this.#headersWritten = true;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#bytesOut += chunk.length;
    return this.fr.res.write(chunk);
  }

  onComplete(): void {
    this.fr.res.end();
    this.#finish('complete');
  }

  onError(err: Error): void {
    const { res, body } = this.fr;
    if (this.#clientGone || body?.clientFailed || (err as ProxyError).code === CLIENT_GONE) {
      if (!res.destroyed) res.destroy();
      this.#finish('client-gone', err);
    } else if (this.#headersWritten) {
      // Never end cleanly: the client must see the body was cut, not a short "complete" blob.
      res.destroy(err);
      this.#finish('cut', err);
    } else {
      this.#finish(this.#sent ? 'no-response' : 'not-sent', err);
    }
  }

  #finish(phase: ForwardPhase, error?: Error): void {
    if (this.#done) return;
    this.#done = true;
    const { res } = this.fr;
    res.off('close', this.#onClientClose);
    res.off('drain', this.#onDrain);
    this.resolve({ phase, status: this.#status, bytesOut: this.#bytesOut, error });
  }
}
