import net from 'node:net';

export interface RawReply {
  status: number;
  /** The whole answer as latin1 text, head and body. */
  text: string;
  /** The body after the head, as text. */
  body: string;
}

/**
 * Writes a request byte for byte (shapes http.request refuses to build) and reads the whole answer;
 * the head should say `Connection: close` so the server ends the connection when it has answered.
 * Each character of `request` is one byte (latin1, as node:http reads header values and as the
 * answer is read back); `localAddress` picks the loopback source address (another client).
 */
export function rawRequest(url: string, request: string, opts: { localAddress?: string } = {}): Promise<RawReply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    // Written without a FIN: node:http takes a half-closed connection as a client gone.
    const sock = net.connect({ port: Number(port), host: hostname, localAddress: opts.localAddress }, () => sock.write(request, 'latin1'));
    let text = '';
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => {
      const at = text.indexOf('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text, body: at < 0 ? '' : text.slice(at + 4) });
    });
  });
}
