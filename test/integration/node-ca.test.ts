import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import type net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createApp } from '../../src/app.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { diagnose } from '../../src/doctor/diagnose.js';
import type { AppDeps } from '../../src/app.js';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { makeServerCert, makeTokenKeyPair, type ServerCert } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';

const BIG = Buffer.alloc(1024 * 1024, 0x62);

/** What node's TLS says of a certificate from a CA it was not given. */
const VERIFY_FAILED = /^(?:NO_NODE_AVAILABLE: )?(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/;

interface HttpsNode {
  url: string;
  pki: ServerCert;
  rootCert: string;
}

/** An HTTPS Harbor-ish node whose certificate a throw-away private CA signed. */
async function startHttpsNode(t: { after: (fn: () => unknown) => void }): Promise<HttpsNode> {
  const tmp = makeTempDir('node-ca');
  t.after(tmp.remove);
  const pki = makeServerCert(tmp.dir);
  const server = https.createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, (req, res) => {
    if (req.url === '/api/v2.0/health') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ status: 'healthy', components: [{ name: 'core', status: 'healthy' }, { name: 'registry', status: 'healthy' }] }));
    }
    if (req.url === '/v2/') return res.end('{}');
    if (req.url === '/v2/big') return res.end(BIG);
    if (req.method === 'PUT') {
      const hash = createHash('sha256');
      req.on('data', (c: Buffer) => hash.update(c));
      return void req.on('end', () => res.writeHead(201, { 'x-sha256': hash.digest('hex') }).end());
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const rootCert = makeTokenKeyPair(tmp.dir, 'token').certFile;
  return { url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, pki, rootCert };
}

/** harbor-lb in front of the node, with active checks and the trust probe on (they run once at start, then hourly). */
async function proxyTo(t: { after: (fn: () => unknown) => void }, node: HttpsNode, ca: string | undefined, deps: AppDeps = {}): Promise<StartedApp> {
  const lb = await startApp(
    [node.url],
    {
      nodes: [{ name: 'n1', url: node.url, ...(ca === undefined ? {} : { ca }) }],
      health: { enabled: true, interval: '1h', healthyAfter: 1, unhealthyAfter: 1 },
      token: { rootCert: node.rootCert, probe: { interval: '1h' } },
    },
    deps,
  );
  t.after(() => lb.close());
  return lb;
}

describe('nodes[].ca: HTTPS nodes with a private CA', () => {
  it('with the CA, traffic, the health check, the trust probe and doctor all reach the node', async (t) => {
    const node = await startHttpsNode(t);
    const lb = await proxyTo(t, node, node.pki.caFile);
    const res = await send(`${lb.url}/v2/`);
    assert.equal(res.status, 200, res.body.toString());
    const [line] = await lb.logs.waitForRequests(1);
    assert.equal(line!.error, undefined);

    const state = await lb.logs.waitFor((l) => l.event === 'node_state' && (l.to === 'healthy' || l.to === 'unhealthy'));
    assert.equal(state.to, 'healthy', String(state.why));
    const [probed] = await lb.app.trustProbe!.round();
    assert.equal(probed!.reachable, true, probed!.tokenDetail);

    const report = await diagnose(validateConfig({ nodes: [{ name: 'n1', url: node.url, ca: node.pki.caFile }] }));
    assert.equal(report.nodes[0]!.reachable, true, report.nodes[0]!.health);
  });

  it("reads a GET's answer through the read pool's reused buffers, over TLS too; other methods through undici's", async (t) => {
    const node = await startHttpsNode(t);
    const reclaimer = {
      bytes: 0,
      freed: 0,
      allocated: (n: number) => {
        reclaimer.bytes += n;
        return 0;
      },
      released: (n: number) => void (reclaimer.freed += n),
      close: () => {},
    };
    const lb = await proxyTo(t, node, node.pki.caFile, { reclaimer });
    const get = await send(`${lb.url}/v2/big`);
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(BIG), 'every byte intact');
    assert.equal(reclaimer.bytes, 0, 'read into buffers the read pool reuses');
    const options = await send(`${lb.url}/v2/big`, { method: 'OPTIONS' });
    assert.ok(options.body.equals(BIG));
    assert.equal(reclaimer.bytes, BIG.length, 'undici reads into buffers of its own');

    // An upload's pieces are freed once the TLS socket wrote them, and arrive as sent.
    const body = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32BE(i, i);
    const put = await send(`${lb.url}/v2/r/blobs/uploads/u1?digest=sha256:00`, { method: 'PUT', body });
    assert.equal(put.status, 201);
    assert.equal(put.headers['x-sha256'], createHash('sha256').update(body).digest('hex'), 'every byte as sent');
    assert.equal(reclaimer.freed, body.length, 'every piece freed once written');
  });

  it('a node that offers HTTP/2 (ALPN h2) is spoken to in HTTP/1.1: traffic, health checks, the trust probe and doctor', async (t) => {
    const tmp = makeTempDir('node-h2');
    t.after(tmp.remove);
    const pki = makeServerCert(tmp.dir);
    const versions: string[] = [];
    const server = http2.createSecureServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile), allowHTTP1: true }, (req, res) => {
      versions.push(`${req.httpVersion} ${req.url}`);
      if (req.url === '/api/v2.0/health') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ status: 'healthy', components: [{ name: 'core', status: 'healthy' }, { name: 'registry', status: 'healthy' }] }));
      }
      res.statusCode = req.url === '/v2/' ? 200 : 404;
      res.end(req.url === '/v2/' ? '{}' : '');
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (session) => sessions.add(session.once('close', () => sessions.delete(session))));
    const sockets = new Set<net.Socket>();
    server.on('secureConnection', (socket: net.Socket) => sockets.add(socket.once('close', () => sockets.delete(socket))));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sessions) s.destroy();
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    const node: HttpsNode = { url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, pki, rootCert: makeTokenKeyPair(tmp.dir, 'token').certFile };
    const lb = await proxyTo(t, node, pki.caFile);
    assert.equal((await send(`${lb.url}/v2/`)).status, 200);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.to === 'healthy');
    await lb.app.trustProbe!.round();
    await diagnose(validateConfig({ nodes: [{ name: 'n1', url: node.url, ca: pki.caFile }] }));
    assert.ok(versions.some((v) => v === '1.1 /v2/'), versions.join(', '));
    assert.ok(versions.some((v) => v === '1.1 /api/v2.0/health'), versions.join(', '));
    assert.deepEqual(versions.filter((v) => !v.startsWith('1.1 ')), [], 'no request in HTTP/2');
  });

  it('without the CA, verification stays on: 503 (no node can be reached) with the TLS code in the routing log, and every check fails', async (t) => {
    const node = await startHttpsNode(t);
    const lb = await proxyTo(t, node, undefined);
    const res = await send(`${lb.url}/v2/`);
    assert.equal(res.status, 503, 'the only node cannot be reached: nothing was sent to it');
    const [line] = await lb.logs.waitForRequests(1);
    assert.match(String(line!.error), VERIFY_FAILED);

    const state = await lb.logs.waitFor((l) => l.event === 'node_state' && (l.to === 'healthy' || l.to === 'unhealthy'));
    assert.equal(state.to, 'unhealthy');
    const [probed] = await lb.app.trustProbe!.round();
    assert.equal(probed!.reachable, false);
    assert.match(String(probed!.tokenDetail), VERIFY_FAILED);

    const report = await diagnose(validateConfig({ nodes: [{ name: 'n1', url: node.url }] }));
    assert.equal(report.nodes[0]!.reachable, false);
    assert.match(report.nodes[0]!.health, /^unreachable: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)$/);
  });

  it('a CA file that is missing or holds no certificate stops start-up, naming nodes[i].ca', (t) => {
    const tmp = makeTempDir('node-ca-bad');
    t.after(tmp.remove);
    const empty = join(tmp.dir, 'empty.pem');
    writeFileSync(empty, 'not a certificate\n');
    const broken = join(tmp.dir, 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const config = (ca: string): ConfigInput => ({
      nodes: [
        { name: 'n1', url: 'https://127.0.0.1:1' },
        { name: 'n2', url: 'https://127.0.0.1:2', ca },
      ],
    });
    const problemsOf = (ca: string): string[] => {
      try {
        createApp(validateConfig(config(ca)));
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        return err.problems;
      }
      assert.fail('createApp accepted the CA file');
    };
    assert.match(problemsOf('/nonexistent/ca.pem')[0]!, /^nodes\[1\]\.ca: cannot use \/nonexistent\/ca\.pem: ENOENT/);
    assert.equal(problemsOf(empty)[0], `nodes[1].ca: cannot use ${empty}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
    assert.match(problemsOf(broken)[0]!, /^nodes\[1\]\.ca: cannot use .*broken\.pem: certificate 1 of 1 does not parse/);
  });
});
