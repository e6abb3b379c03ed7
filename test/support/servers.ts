import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';

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

/**
 * A loopback port that was free a moment ago, for programs that must be told their port up front
 * (nginx, redis, the registry, harbor-lb's CLI). It is taken below the kernel's range of ephemeral
 * ports: a port from that range, free when asked, can meanwhile become the local port of any
 * outgoing connection on the machine (the suite runs files in parallel), and the program's bind
 * then fails with EADDRINUSE. Below the range only another listener can take it.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  for (let i = 0; i < 100; i++) {
    const port = 10_000 + Math.floor(Math.random() * (below - 10_000));
    // Not one fetch refuses (tests reach their servers with fetch).
    if (!FETCH_BLOCKED_PORTS.includes(port) && (await canListen(port))) return port;
  }
  return osPort();
}

/** The lowest port the kernel hands out for outgoing connections (Linux), or IANA's 49152. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 49_152;
  } catch {
    return 49_152;
  }
}

/** The Fetch standard's blocked ports from 1024 up (browsers block them too): fetch will not connect to them. */
const FETCH_BLOCKED_PORTS = [10_080, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 5060, 5061, 4190, 4045, 3659, 2049, 1719, 1720, 1723];

/**
 * A free port that fetch refuses to connect to (the Fetch standard's blocked ports, as browsers
 * block them), for code that must reach any port; a free port of any kind if none of them is free.
 */
export async function fetchBlockedPort(): Promise<number> {
  for (const port of FETCH_BLOCKED_PORTS) if (await canListen(port)) return port;
  return freePort();
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port the kernel picks (from its ephemeral range). */
async function osPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A port nothing listens on (bound then closed), for "node unreachable" cases. */
export const deadPort = freePort;
