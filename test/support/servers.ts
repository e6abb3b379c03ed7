import http from 'node:http';
import net from 'node:net';

export interface TestServer {
  server: http.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A real HTTP server on a free loopback port; close() ends open connections too. */
export async function startServer(handler: http.RequestListener): Promise<TestServer> {
  const server = http.createServer({ requestTimeout: 0 }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port that was free a moment ago, for programs that must be told their port up front. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A port nothing listens on (bound then closed), for "node unreachable" cases. */
export const deadPort = freePort;
