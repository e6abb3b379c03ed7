import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startServer, type TestServer } from '../support/servers.js';

/** A node that answers like a registry configured with its own address: realm and Location point at itself. */
async function selfPointingNode(): Promise<TestServer> {
  let self = '';
  const node = await startServer((req, res) => {
    if (req.method === 'POST') {
      res.writeHead(202, { location: `${self}/v2/library/a/blobs/uploads/u-1?_state=abc`, 'docker-upload-uuid': 'u-1', range: '0-0', 'content-length': 0 });
      return res.end();
    }
    if (req.url === '/v2/echo') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ rawHeaders: req.rawHeaders }));
    }
    res.writeHead(401, {
      'www-authenticate': `Bearer realm="${self}/service/token",service="harbor-registry"`,
      'content-type': 'application/json',
    });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}');
  });
  self = node.url;
  return node;
}

describe('registry awareness', () => {
  it('rewrites realm and upload Location that point at a node to the public URL', async (t) => {
    const node = await selfPointingNode();
    const lb = await startApp([node.url], { publicUrl: 'https://hub.example.com:8070' });
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const challenge = await send(`${lb.url}/v2/`);
    assert.equal(challenge.status, 401);
    assert.equal(challenge.headers['www-authenticate'], 'Bearer realm="https://hub.example.com:8070/service/token",service="harbor-registry"');
    const started = await send(`${lb.url}/v2/library/a/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    assert.equal(started.headers.location, 'https://hub.example.com:8070/v2/library/a/blobs/uploads/u-1?_state=abc');
    assert.equal(started.headers['docker-upload-uuid'], 'u-1');
  });

  it('sends Host as the client sent it and sets X-Forwarded-*', async (t) => {
    const node = await selfPointingNode();
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const r = await send(`${lb.url}/v2/echo`, {
      headers: { host: 'hub.example.com:8070', connection: 'keep-alive, x-hop', 'x-hop': 'secret-hop', 'x-forwarded-for': '6.6.6.6' },
    });
    const raw = (JSON.parse(r.body.toString()) as { rawHeaders: string[] }).rawHeaders;
    const got = new Map<string, string>();
    for (let i = 0; i < raw.length; i += 2) got.set(raw[i]!.toLowerCase(), raw[i + 1]!);
    assert.equal(got.get('host'), 'hub.example.com:8070');
    assert.equal(got.get('x-forwarded-for'), '127.0.0.1', 'an untrusted client cannot inject addresses');
    assert.equal(got.get('x-forwarded-proto'), 'http');
    assert.equal(got.get('x-forwarded-host'), 'hub.example.com:8070');
    assert.equal(got.get('x-real-ip'), '127.0.0.1');
    assert.match(got.get('x-request-id') ?? '', /^[0-9a-f]{6}-[0-9a-z]+$/);
    assert.equal(got.has('x-hop'), false);
  });

  it('answers Expect: 100-continue and forwards the body', async (t) => {
    const node = await startServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).length} expect=${req.headers.expect ?? 'none'}`));
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${lb.url}/v2/r/blobs/uploads/u`, { method: 'PUT', agent: false, headers: { expect: '100-continue', 'content-length': 5 } });
      req.on('continue', () => req.end('hello'));
      req.on('response', (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
    });
    assert.equal(body, 'got 5 expect=none');
  });

  it('spreads requests over the nodes and records the contract fields', async (t) => {
    const nodes = await Promise.all([1, 2, 3].map(() => startServer((_q, r) => r.end('ok'))));
    const lb = await startApp(nodes.map((n) => n.url));
    t.after(async () => {
      await lb.close();
      await Promise.all(nodes.map((n) => n.close()));
    });
    const agent = new http.Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    for (let i = 0; i < 60; i++) await send(`${lb.url}/v2/library/a/manifests/v${i}`, { agent });
    const lines = await lb.logs.waitForRequests(60);
    const perNode = new Map<unknown, number>();
    for (const l of lines) perNode.set(l.node, (perNode.get(l.node) ?? 0) + 1);
    assert.deepEqual([...perNode.keys()].sort(), ['n1', 'n2', 'n3']);
    const l = lines[0]!;
    assert.deepEqual(Object.keys(l).filter((k) => !['level', 'time'].includes(k)).sort(), [
      'affinity', 'attempts', 'bytesIn', 'bytesOut', 'client', 'durationMs', 'event', 'method', 'node', 'path', 'reason', 'reqId', 'requestId', 'route', 'status', 'traceId',
    ]);
    assert.deepEqual(l.client, { ip: '127.0.0.1' });
    assert.equal(l.route, 'v2');
    assert.equal(l.reason, 'balanced');
    assert.equal(l.status, 200);
    assert.equal(l.bytesOut, 2);
  });

  it('keeps passwords, tokens, cookies and Authorization out of the log', async (t) => {
    const node = await startServer((req, res) => {
      res.setHeader('set-cookie', 'sid=server-session-secret; Path=/');
      res.end('ok');
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'robot$ci' })).toString('base64url')}.c2lnbmF0dXJlLXNlY3JldA`;
    await send(`${lb.url}/service/token?account=admin&service=harbor-registry`, {
      headers: { authorization: `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}` },
    });
    await send(`${lb.url}/v2/library/a/manifests/latest`, { headers: { authorization: `Bearer ${jwt}` } });
    await send(`${lb.url}/c/login?principal=admin&password=Harbor12345`, { method: 'POST', headers: { cookie: 'sid=client-session-secret' } });
    const lines = await lb.logs.waitForRequests(3);
    const text = lb.logs.text();
    for (const secret of ['Harbor12345', 'c2lnbmF0dXJlLXNlY3JldA', 'client-session-secret', 'server-session-secret', 'Basic ', 'Bearer ']) {
      assert.ok(!text.includes(secret), `"${secret}" reached the log`);
    }
    assert.deepEqual(
      lines.map((l) => (l.client as { user?: string }).user),
      ['admin', 'robot$ci', undefined],
    );
    assert.equal(lines[2]!.path, '/c/login?principal=admin&password=[REDACTED]');
  });
});
