import type { Server, Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { announcesProxyHeader, readProxyHeader } from './proxy-protocol.js';
import { normalizeIp, type TrustedPeers } from './trusted-peers.js';

/**
 * listen.proxyProtocol: connections from the L4 balancers named there must begin with a PROXY
 * header (v1 or v2; the balancer's own checks send one too, v2 LOCAL or v1 UNKNOWN), and the
 * client address it carries becomes the connection's address for everything that reads one
 * (limits, the routing line, X-Forwarded-For to nodes). A connection from a named balancer without
 * a header is refused: guessing whether one is there would let a client behind a balancer that
 * forgot to send it write its own (the PROXY specification forbids guessing). A connection from
 * anyone else that begins like a PROXY header is refused as soon as that shows; any other goes on
 * untouched.
 *
 * It stands in front of the listener's own 'connection' handlers (node:http's parser, TLS, the
 * connection guard): they see the connection once its first bytes were read, those bytes put back.
 */
export class ProxyProtocolGate {
  /** Connections still in the gate: closed with the listener. */
  readonly #waiting = new Set<Socket>();

  constructor(
    private readonly senders: TrustedPeers,
    private readonly headerTimeout: number,
    private readonly refuse: (socket: Socket, ip: string, why: string) => void,
    /** listen.maxConnections: the connection guard counts a connection once it leaves the gate; until then this bounds them. */
    private readonly maxWaiting: number,
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
    server.prependListener('secureConnection', (tlsSocket: Socket) => {
      const raw = (tlsSocket as unknown as { _parent?: Socket })._parent;
      if (raw !== undefined && Object.hasOwn(raw, 'remoteAddress')) carry(tlsSocket, raw.remoteAddress!, raw.remotePort!);
    });
    server.once('close', () => {
      for (const s of this.#waiting) s.destroy();
    });
  }

  #admit(socket: Socket, pass: () => void): void {
    const ip = normalizeIp(socket.remoteAddress);
    const sender = this.senders.has(ip);
    const chunks: Buffer[] = [];
    let size = 0;
    if (this.#waiting.size >= this.maxWaiting) {
      socket.on('error', () => socket.destroy());
      return this.refuse(socket, ip, `${this.#waiting.size} connections are waiting for their first bytes (listen.maxConnections)`);
    }
    this.#waiting.add(socket);
    const timer = setTimeout(() => socket.destroy(), this.headerTimeout);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      this.#waiting.delete(socket);
      socket.off('data', onData);
      socket.off('close', done);
      socket.off('end', onEnd);
      socket.pause();
    };
    // node:http listens half-open: a client that ends before its first byte would stay in the gate.
    const onEnd = () => {
      done();
      socket.destroy();
    };
    const refused = (why: string) => {
      done();
      socket.off('error', onError);
      socket.on('error', () => socket.destroy());
      this.refuse(socket, ip, why);
    };
    // Until the listener's own handlers take it, a reset must not go unheard (it would end the process).
    const onError = () => {
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      // A copy: a connection handed to a request worker reads into a buffer the next read reuses
      // (client-reads.ts), and these bytes are kept until the header is whole, then put back.
      chunks.push(Buffer.from(chunk));
      size += chunk.length;
      const read = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      const r = readProxyHeader(read);
      if (r.kind === 'absent') {
        if (sender) return refused(`${ip} is in listen.proxyProtocol, and its connection began without a PROXY header`);
        done();
        socket.off('error', onError);
        socket.unshift(read);
        return pass();
      }
      // Anyone else is refused as soon as the bytes say "PROXY header", whole or not.
      if (!sender && (r.kind !== 'more' || announcesProxyHeader(read))) return refused(`${ip} is not in listen.proxyProtocol`);
      if (r.kind === 'more') return;
      if (r.kind === 'invalid') return refused(r.reason);
      done();
      socket.off('error', onError);
      if (r.header.source !== undefined) carry(socket, r.header.source.address, r.header.source.port);
      if (read.length > r.header.length) socket.unshift(read.subarray(r.header.length));
      pass();
    };
    socket.on('data', onData);
    socket.on('close', done);
    socket.on('end', onEnd);
    socket.on('error', onError);
  }
}

/** The client's address and port, as the PROXY header says, wherever the socket's are read. */
function carry(socket: Socket, address: string, port: number): void {
  Object.defineProperty(socket, 'remoteAddress', { value: address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: port, configurable: true });
}
