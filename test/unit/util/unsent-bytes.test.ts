import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { unsentBytes } from '../../../src/util/unsent-bytes.js';
import { makeServerCert } from '../../support/pki.js';
import { makeTempDir } from '../../support/tmp.js';

/**
 * The server side writes 16 MiB at once to a client that reads nothing, then takes some: what
 * libuv holds of that one write goes down as the client reads, while the stream still counts the
 * whole write as waiting (writableLength).
 */
async function drainsWhileOneWriteWaits(server: net.Server, dial: (port: number) => Socket): Promise<void> {
  const accepted = new Promise<Socket>((resolve) => server.once(server instanceof tls.Server ? 'secureConnection' : 'connection', resolve));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = dial((server.address() as net.AddressInfo).port);
  try {
    client.on('error', () => {});
    const socket = await accepted;
    client.pause();
    socket.write(Buffer.alloc(16 * 1024 * 1024));
    const before = unsentBytes(socket);
    assert.equal(typeof before, 'number');
    assert.ok(before! > 0, 'the kernel took part of the write, not all');
    // The client takes 4 MiB; bounded by its count of 'data' events.
    let taken = 0;
    client.on('data', (d: Buffer) => {
      taken += d.length;
      if (taken >= 4 * 1024 * 1024) client.pause();
    });
    client.resume();
    for (let i = 0; i < 10_000 && (taken < 4 * 1024 * 1024 || unsentBytes(socket)! >= before!); i++) await new Promise((r) => setImmediate(r));
    assert.ok(unsentBytes(socket)! < before!, `${unsentBytes(socket)} of ${before} left after the client took ${taken}`);
    assert.equal(socket.writableLength, 16 * 1024 * 1024, 'the stream still counts the whole write');
    socket.destroy();
  } finally {
    client.destroy();
    server.close();
  }
}

describe('unsentBytes: progress within one write to a client', () => {
  it('on a plain TCP connection', async () => {
    await drainsWhileOneWriteWaits(net.createServer(), (port) => net.connect(port, '127.0.0.1'));
  });

  it('under TLS, on the connection beneath', async () => {
    const tmp = makeTempDir('unsent');
    try {
      const cert = makeServerCert(join(tmp.dir, 'pki'));
      const server = tls.createServer({ key: readFileSync(cert.keyFile), cert: readFileSync(cert.certFile) });
      await drainsWhileOneWriteWaits(server, (port) => tls.connect({ port, host: '127.0.0.1', ca: readFileSync(cert.caFile) }));
    } finally {
      tmp.remove();
    }
  });
});
