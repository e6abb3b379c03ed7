import net from 'node:net';

export interface ExpectingReply {
  /** Everything the client read, as text: any 100 Continue, then the final answer. */
  text: string;
  /** The final answer's status. */
  status: number;
  /** Body bytes the client sent (only ever after a 100 Continue). */
  sent: number;
}

/**
 * An upload sent as curl sends a large one: the head with `Expect: 100-continue`, the body only
 * once a 100 Continue came. Reads the final answer whole, then hangs up (or sees harbor-lb close).
 */
export function expectingUpload(url: string, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<ExpectingReply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname);
    let text = '';
    let sent = 0;
    const finalAt = () => text.search(/HTTP\/1\.1 [2-5]\d\d /);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (sent === 0 && finalAt() < 0 && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = body.length;
        s.write(body);
      }
      const at = finalAt();
      const headEnd = at < 0 ? -1 : text.indexOf('\r\n\r\n', at);
      if (headEnd < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(at, headEnd))?.[1] ?? 0);
      if (text.length >= headEnd + 4 + length) s.end();
    });
    s.on('close', () => {
      const at = finalAt();
      resolve({ text, status: at < 0 ? 0 : Number(text.slice(at + 9, at + 12)), sent });
    });
    const head = Object.entries({ 'Content-Type': 'application/octet-stream', ...headers, 'Content-Length': String(body.length), Expect: '100-continue' })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    s.write(`PUT ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${head}\r\n`);
  });
}
