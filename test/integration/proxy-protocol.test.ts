import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { startHaproxy } from '../support/haproxy.js';
import { makeServerCert } from '../support/pki.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

/** haproxy connects to harbor-lb from this address; the client from its own, so the three can be told apart. */
const BALANCER = '127.0.0.2';
const CLIENT = '127.0.0.7';

/** One GET from the loopback address `from`, to `port`; with `ca`, over TLS. */
function get(port: number, from: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, path: '/v2/', localAddress: from, agent: false as const };
    const done = (res: http.IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = ca ? https.get({ ...opts, ca, servername: 'localhost' }, done) : http.get(opts, done);
    req.on('error', reject);
  });
}

async function setup(t: { after: (fn: () => unknown) => void }, tls = false, maxConnections?: number, workers = 1) {
  const tmp = makeTempDir('proxy-protocol');
  t.after(tmp.remove);
  const seen: IncomingHttpHeaders[] = [];
  const node = await startServer((req, res) => {
    seen.push(req.headers);
    res.end('{}');
  });
  t.after(() => node.close());
  const cert = tls ? makeServerCert(join(tmp.dir, 'pki')) : undefined;
  const lb = await startApp([node.url], {
    listen: { address: '127.0.0.1', port: 0, proxyProtocol: [BALANCER], ...(maxConnections ? { maxConnections } : {}), ...(cert ? { tls: { cert: cert.certFile, key: cert.keyFile } } : {}) },
    proxy: { workers },
  });
  t.after(() => lb.close());
  const lbPort = Number(new URL(lb.url).port);
  return { tmp, seen, lb, lbPort, ca: cert ? readFileSync(cert.caFile) : undefined };
}

describe('listen.proxyProtocol: the client address from a trusted L4 balancer (haproxy)', () => {
  for (const version of [1, 2] as const) {
    it(`takes the client's address from haproxy's send-proxy${version === 2 ? '-v2' : ''}: limits, routing line, X-Forwarded-For`, async (t) => {
      const { tmp, seen, lb, lbPort } = await setup(t);
      const haproxy = await startHaproxy(tmp.dir, { host: '127.0.0.1', port: lbPort }, version, BALANCER);
      t.after(() => haproxy.stop());
      assert.equal((await get(haproxy.port, CLIENT)).status, 200);
      const [line] = await lb.logs.waitForRequests(1);
      assert.deepEqual(line!.client, { ip: CLIENT });
      assert.equal(seen[0]!['x-forwarded-for'], CLIENT);
      assert.equal(seen[0]!['x-real-ip'], CLIENT);
    });
  }

  for (const workers of [1, 2]) {
    it(`takes it through TLS too (haproxy passes the TLS connection on, header first)${workers > 1 ? ', on connections the control plane hands to request workers' : ''}`, async (t) => {
      const { tmp, seen, lb, lbPort, ca } = await setup(t, true, undefined, workers);
      const haproxy = await startHaproxy(tmp.dir, { host: '127.0.0.1', port: lbPort }, 2, BALANCER);
      t.after(() => haproxy.stop());
      for (let i = 0; i < 4; i++) assert.equal((await get(haproxy.port, CLIENT, ca)).status, 200);
      const lines = await lb.logs.waitForRequests(4);
      assert.deepEqual([...new Set(lines.map((l) => JSON.stringify(l.client)))], [JSON.stringify({ ip: CLIENT })]);
      assert.equal(seen[0]!['x-real-ip'], CLIENT);
    });
  }

  it('refuses a PROXY header from anyone else, and serves them as themselves without one', async (t) => {
    const { seen, lb, lbPort } = await setup(t);
    // A client that writes a header itself, to pass for 6.6.6.6: closed unanswered, logged.
    const answer = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: lbPort, localAddress: CLIENT }, () => {
        s.write('PROXY TCP4 6.6.6.6 127.0.0.1 4444 8070\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
    });
    assert.equal(answer, '');
    const refused = await lb.logs.waitFor((l) => l.event === 'connection_rejected' && l.reason === 'PROXY_HEADER_REFUSED');
    assert.deepEqual(refused.client, { ip: CLIENT });
    assert.equal(seen.length, 0, 'nothing reached the node');
    // Without a header the same client is served, as itself.
    assert.equal((await get(lbPort, CLIENT)).status, 200);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual(line!.client, { ip: CLIENT });
  });

  it("requires the header from a listed balancer (no guessing), takes v2 LOCAL (its own checks) as itself, and survives resets mid-header", async (t) => {
    const { lb, lbPort } = await setup(t);
    const talk = (from: string, bytes: Buffer) =>
      new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: lbPort, localAddress: from }, () => s.write(bytes));
        let got = '';
        s.on('data', (c: Buffer) => (got += c.toString()));
        s.on('close', () => resolve(got));
        s.on('error', () => undefined);
      });
    // Plain HTTP from the balancer, no header: refused, not served as the balancer.
    assert.equal(await talk(BALANCER, Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')), '');
    await lb.logs.waitFor((l) => l.event === 'connection_rejected' && l.reason === 'PROXY_HEADER_REFUSED' && (l.client as { ip: string }).ip === BALANCER);
    // v2 LOCAL (a health check of the balancer's own): served as the balancer.
    const local = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x20, 0x00, 0, 0]), Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]);
    assert.match(await talk(BALANCER, local), /^HTTP\/1\.1 200/);
    const [line] = await lb.logs.waitForRequests(1);
    assert.deepEqual(line!.client, { ip: BALANCER });
    // A malformed header from the balancer: refused.
    assert.equal(await talk(BALANCER, Buffer.from('PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n')), '');
    // Resets while harbor-lb waits for a header, from anyone: the process lives on and serves.
    for (const from of [CLIENT, BALANCER]) {
      for (const first of ['', 'P', 'PROXY TCP4 1.2']) {
        await new Promise<void>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: lbPort, localAddress: from }, () => {
            if (first !== '') s.write(first);
            setImmediate(() => s.resetAndDestroy());
          });
          s.on('close', () => resolve());
          s.on('error', () => undefined);
        });
      }
    }
    assert.equal((await get(lbPort, CLIENT)).status, 200, 'still serving');
  });

  it('bounds the connections waiting for their first bytes by listen.maxConnections (they are not yet the guard\'s to count)', async (t) => {
    const { lb, lbPort } = await setup(t, false, 3);
    const silent = await Promise.all([1, 2, 3].map(() => new Promise<net.Socket>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: lbPort, localAddress: CLIENT }, () => resolve(s));
      s.on('error', () => undefined);
    })));
    const fourth = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: lbPort, localAddress: CLIENT });
      s.on('close', () => resolve('closed'));
      s.on('error', () => undefined);
    });
    assert.equal(fourth, 'closed');
    const refused = await lb.logs.waitFor((l) => l.event === 'connection_rejected' && l.reason === 'PROXY_HEADER_REFUSED');
    assert.match(String(refused.why), /waiting for their first bytes/);
    for (const s of silent) s.end();
    // Once they are gone, connections are taken again.
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) status = await get(lbPort, CLIENT).then((r) => r.status, () => 0);
    assert.equal(status, 200);
  });
});
