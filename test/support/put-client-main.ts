import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/**
 * A client in a process of its own (so that it sends while the server reads, as real clients do):
 * `node put-client-main.js PORT CONNECTIONS`, CONNECTIONS a JSON array with, per connection, the
 * sizes of the random bodies it PUTs on it one after the other (the last asks to close). Prints a
 * JSON array with, per connection, the sha256 of each body sent and the bytes answered.
 */
const port = Number(process.argv[2]);
const connections = JSON.parse(process.argv[3]!) as number[][];

function run(sizes: number[]): Promise<{ sent: string[]; got: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      for (const [i, size] of sizes.entries()) {
        const body = randomBytes(size);
        sent.push(createHash('sha256').update(body).digest('hex'));
        s.write(`PUT /b${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n${i === sizes.length - 1 ? 'Connection: close\r\n' : ''}\r\n`);
        s.write(body);
      }
    });
    const sent: string[] = [];
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('close', () => resolve({ sent, got }));
    s.on('error', reject);
  });
}

process.stdout.write(JSON.stringify(await Promise.all(connections.map(run))));
