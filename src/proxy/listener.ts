import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Config } from '../config/schema.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** The client-facing server: plain HTTP, or HTTPS on the same port when listen.tls is set. */
export function createListener(cfg: Config['listen'], handler: Handler): http.Server {
  const common: http.ServerOptions = {
    // Bearer tokens with many scopes make large heads; Harbor's nginx allows the same.
    maxHeaderSize: 65_536,
    keepAliveTimeout: cfg.keepAliveTimeout,
    headersTimeout: cfg.headersTimeout,
    // No total request timeout: a 20 GB layer upload may take an hour. Idle sockets are cut instead.
    requestTimeout: 0,
    noDelay: true,
  };
  const server = cfg.tls
    ? https.createServer(
        {
          ...common,
          cert: readFileSync(cfg.tls.cert),
          key: readFileSync(cfg.tls.key),
          minVersion: cfg.tls.minVersion,
          ALPNProtocols: ['http/1.1'],
        },
        handler,
      )
    : http.createServer(common, handler);
  server.timeout = cfg.idleTimeout;
  return server;
}

export function listen(server: http.Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}

/** Closes a server and every connection it still has, idle or not. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
