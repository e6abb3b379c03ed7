import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Server as NetServer } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Config } from '../config/schema.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** The client-facing server: plain HTTP, or HTTPS on the same port when listen.tls is set. */
export function createListener(cfg: Config['listen'], handler: Handler): http.Server {
  const common: http.ServerOptions = {
    // Bearer tokens with many scopes make large heads; Harbor's nginx allows the same.
    maxHeaderSize: 65_536,
    keepAliveTimeout: cfg.keepAliveTimeout,
    headersTimeout: cfg.headersTimeout,
    // node:http checks head timeouts on this interval (30 s by default, so a 60 s timeout fired
    // at up to 90 s): check often enough that the documented seconds hold.
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(cfg.headersTimeout / 10))),
    // No total request timeout: a 20 GB layer upload may take an hour. Idle sockets are cut instead.
    requestTimeout: 0,
    noDelay: true,
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): node:http
    // then hands it over already ended, without the body stream's life cycle (its reads, 'end',
    // 'close' and their ticks), which cost a small GET about 3 µs of CPU (docs/benchmarks.md).
    // Nothing here waits on such a request's stream: its client's leaving is seen on the
    // response's 'close'. A Node without the option ignores it.
    optimizeEmptyRequests: true,
    // A request without Host, and one with an Expect other than 100-continue, reach the handler,
    // which answers them with registry JSON and a routing line (request-check.ts protocolRefusal).
    requireHostHeader: false,
  };
  const server = cfg.tls
    ? https.createServer(
        {
          ...common,
          ...listenTlsContext(cfg.tls, readFileSync(cfg.tls.cert), readFileSync(cfg.tls.key)),
          ALPNProtocols: ['http/1.1'],
        },
        handler,
      )
    : http.createServer(common, handler);
  server.timeout = cfg.idleTimeout;
  // A client that asks before sending its body (Expect: 100-continue) gets its 100 Continue only
  // once harbor-lb reads the body (RequestBody): for a node, or up front when it is small. A request
  // harbor-lb answers first (a 400, no node left) is answered before the client sends any of it,
  // and node:http then closes the connection.
  server.on('checkContinue', handler);
  server.on('checkExpectation', handler);
  return server;
}

/**
 * The listener's secure context, at start and on every reload: setSecureContext() replaces the
 * whole context, so whatever a reload left out (the ciphers, say) would fall back to Node's defaults.
 */
export function listenTlsContext(tls: NonNullable<Config['listen']['tls']>, cert: Buffer, key: Buffer): SecureContextOptions {
  return { cert, key, minVersion: tls.minVersion, ciphers: tls.ciphers };
}

/** A listener that could not be bound, naming what it was for and the address:port it wanted. */
export class ListenError extends Error {
  readonly code: string;
  constructor(what: string, address: string, port: number, cause: NodeJS.ErrnoException) {
    const where = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    const why = cause.code === undefined ? cause.message : `${BIND_ERRORS[cause.code] ?? cause.message} (${cause.code})`;
    super(`cannot listen for ${what} on ${where}: ${why}`, { cause });
    this.name = 'ListenError';
    this.code = cause.code ?? 'LISTEN_FAILED';
  }
}

const BIND_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no interface of this machine has that address',
};

/** Binds `server`; resolves with the port bound (the one picked, for port 0), rejects with a ListenError. */
export function listen(server: NetServer, port: number, address: string, what = 'connections', reusePort = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(new ListenError(what, address, port, err));
    server.once('error', failed);
    // reusePort: request workers each bind the port, and the kernel spreads connections among them.
    server.listen({ port, host: address, reusePort }, () => {
      server.off('error', failed);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}

/** Closes a server and every connection it still has, idle or not. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    // Not listening any more (stopAccepting), or never (given its connections): close() still
    // stops node:http's timer that checks head timeouts.
    if (!server.listening) {
      server.close();
      return resolve();
    }
    server.close(() => resolve());
  });
}

/**
 * Stops taking new connections and nothing else. http.Server.close() also closes the idle ones
 * (Node 19 and later), and takes a connection whose answer was ended as idle while that answer's
 * last bytes may still wait for a slow client: ConnectionGuard.closeIdle() closes them once gone.
 */
export function stopAccepting(server: http.Server): void {
  if (server.listening) NetServer.prototype.close.call(server);
}

/**
 * Readies a server that is given its connections (`emit('connection')`, proxy.connectionBalance
 * least-connections) instead of accepting them: node:http starts tracking connections, which
 * enforces listen.headersTimeout and lets idle connections be closed, on 'listening', which such
 * a server never emits by itself.
 */
export function openForHandedConnections(server: http.Server): void {
  server.emit('listening');
}
