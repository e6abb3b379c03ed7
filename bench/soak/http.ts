import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

/** The request never got a complete answer: refused, reset, cut, or over its time limit. */
export class TransportError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The run is ending: the request was abandoned on purpose, not failed. */
export class Aborted extends Error {}

export interface RequestOptions {
  port: number;
  method: string;
  path: string;
  headers: http.OutgoingHttpHeaders;
  body?: Buffer;
  agent: http.Agent;
  /** The client's own loopback address (127.0.0.x): each simulated user is its own client. */
  localAddress: string;
  /** Whole request, head to last body byte. */
  timeoutMs: number;
  signal: AbortSignal;
  /** Bodies larger than this are refused (the soak only moves small images). */
  maxBody?: number;
}

/** One request with node:http, body read whole; every way it can fail without an answer is a TransportError. */
export function request(o: RequestOptions): Promise<Reply> {
  const started = performance.now();
  const maxBody = o.maxBody ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (o.signal.aborted) return reject(new Aborted('run ended'));
    let done = false;
    const finish = (err: Error | undefined, reply?: Reply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(reply!);
    };
    const req = http.request(
      { host: '127.0.0.1', port: o.port, method: o.method, path: o.path, headers: o.headers, agent: o.agent, localAddress: o.localAddress },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBody) req.destroy(new TransportError('BODY_TOO_LARGE', `response body over ${maxBody} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - started }));
        res.on('error', (err) => finish(asTransport(err)));
        res.on('aborted', () => finish(new TransportError('RESPONSE_CUT', 'response cut before its end')));
      },
    );
    const timer = setTimeout(() => req.destroy(new TransportError('CLIENT_TIMEOUT', `no complete answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    const onAbort = () => {
      req.destroy();
      finish(new Aborted('run ended'));
    };
    o.signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(asTransport(err)));
    req.end(o.body);
  });
}

function asTransport(err: Error): Error {
  if (err instanceof TransportError || err instanceof Aborted) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
  return new TransportError(code, `${code}: ${err.message}`);
}
