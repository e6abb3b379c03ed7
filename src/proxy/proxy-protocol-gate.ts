import type { Server } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Socket } from 'node:net';
import { MAX_PROXY_HEADER, readProxyHeader } from './proxy-protocol.js';
import { normalizeIp, type TrustedPeers } from './trusted-peers.js';

/**
 * listen.proxyProtocol: connections from the L4 balancers named there may begin with a PROXY
 * header (v1 or v2); the client address it carries becomes the connection's address for
 * everything that reads one (limits, the routing line, X-Forwarded-For to nodes). The header is
 * optional from them (a balancer's own health check may come without). A connection from anyone
 * else that begins with a PROXY header, or a malformed header from anyone, is refused: a client
 * must not choose the address harbor-lb believes.
 *
 * It stands in front of the listener's own 'connection' handlers (node:http's parser, TLS, the
 * connection guard): they see the connection once its first bytes were read, those bytes put back.
 */
export class ProxyProtocolGate {
  constructor(
    private readonly senders: TrustedPeers,
    private readonly headerTimeout: number,
    private readonly refuse: (socket: Socket, ip: string, why: string) => void,
  ) {}

  attach(server: Server): void {
    const tls = server instanceof TlsServer;
    const handlers = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) =>
      this.#admit(socket, () => {
        // node:http would parse straight from the socket's handle, past the bytes put back: it reads
        // them, and what follows, from the stream instead (a cost PROXY connections alone pay).
        // TLS reads the stream already.
        const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
        if (!tls && handle !== undefined) handle._consumed = true;
        for (const h of handlers) h.call(server, socket);
        if (!tls) socket.resume();
      }),
    );
    // A TLS listener's requests arrive on the TLS socket made from the TCP one: it carries the same client.
    server.prependListener('secureConnection', (tls: Socket) => {
      const raw = (tls as unknown as { _parent?: Socket })._parent;
      if (raw !== undefined && Object.hasOwn(raw, 'remoteAddress')) carry(tls, raw.remoteAddress!, raw.remotePort!);
    });
  }

  #admit(socket: Socket, pass: () => void): void {
    const ip = normalizeIp(socket.remoteAddress);
    const sender = this.senders.has(ip);
    let read: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.headerTimeout);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
    };
    const onClose = () => clearTimeout(timer);
    const onData = (chunk: Buffer) => {
      read = read.length === 0 ? chunk : Buffer.concat([read, chunk]);
      const r = readProxyHeader(read);
      if (r.kind === 'more' && read.length < MAX_PROXY_HEADER) return;
      done();
      if (r.kind === 'absent') {
        socket.unshift(read);
        return pass();
      }
      if (r.kind !== 'header') return this.refuse(socket, ip, r.kind === 'invalid' ? r.reason : 'an oversized header');
      if (!sender) return this.refuse(socket, ip, `${ip} is not in listen.proxyProtocol`);
      if (r.header.source !== undefined) carry(socket, r.header.source.address, r.header.source.port);
      if (read.length > r.header.length) socket.unshift(read.subarray(r.header.length));
      pass();
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  }
}

/** The client's address and port, as the PROXY header says, wherever the socket's are read. */
function carry(socket: Socket, address: string, port: number): void {
  Object.defineProperty(socket, 'remoteAddress', { value: address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: port, configurable: true });
}
