import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADDED_REQUEST_HEADERS, buildRequestHeaders, buildResponseHeaders, OriginRewriter, type ForwardingInfo } from '../../../src/proxy/headers.js';
import { requestIdentity } from '../../../src/proxy/request-identity.js';

const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const info: ForwardingInfo = { peerIp: '192.0.2.10', clientIp: '192.0.2.10', proto: 'https', trusted: false, identity: { requestId: 'abc-1', traceparent: TRACE, traceId: '0af7651916cd43dd8448eb211c80319c', tracestate: undefined } };

function toMap(flat: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i]!.toLowerCase();
    m.set(k, [...(m.get(k) ?? []), flat[i + 1]!]);
  }
  return m;
}

describe('request headers sent to a node', () => {
  it('names in ADDED_REQUEST_HEADERS every header it adds (request-check takes those names unread)', () => {
    const all: ForwardingInfo = { ...info, identity: { ...info.identity, tracestate: 'vendor=1' }, identityEncoding: true };
    const added = buildRequestHeaders(['Host', 'hub.example.com'], all).filter((_, i) => i % 2 === 0 && i > 1);
    assert.deepEqual([...new Set(added)].sort(), [...ADDED_REQUEST_HEADERS].sort());
  });

  it('strips hop-by-hop headers, including those a Connection header names, and keeps the rest as sent', () => {
    const out = toMap(
      buildRequestHeaders(
        [
          'Host', 'hub.example.com:8070',
          'Connection', 'keep-alive, X-Secret-Hop',
          'Keep-Alive', 'timeout=5',
          'Transfer-Encoding', 'chunked',
          'TE', 'trailers',
          'Upgrade', 'h2c',
          'Expect', '100-continue',
          'Proxy-Authorization', 'Basic eA==',
          'X-Secret-Hop', '1',
          'Content-Length', '10',
          'Authorization', 'Bearer t',
          'Docker-Distribution-Api-Version', 'registry/2.0',
        ],
        info,
      ),
    );
    for (const gone of ['connection', 'keep-alive', 'transfer-encoding', 'te', 'upgrade', 'expect', 'proxy-authorization', 'x-secret-hop']) {
      assert.equal(out.has(gone), false, `${gone} must not be forwarded`);
    }
    assert.deepEqual(out.get('host'), ['hub.example.com:8070'], 'Host passes as the client sent it, port included');
    assert.deepEqual(out.get('content-length'), ['10'], 'Content-Length is kept so uploads are not re-chunked');
    assert.deepEqual(out.get('authorization'), ['Bearer t']);
    assert.deepEqual(out.get('docker-distribution-api-version'), ['registry/2.0']);
  });

  it('replaces forwarding headers from an untrusted client with its own', () => {
    const out = toMap(
      buildRequestHeaders(['Host', 'hub:8070', 'X-Forwarded-For', '6.6.6.6', 'X-Forwarded-Proto', 'http', 'X-Forwarded-Host', 'evil', 'X-Real-IP', '6.6.6.6', 'X-Request-Id', 'spoof'], info),
    );
    assert.deepEqual(out.get('x-forwarded-for'), ['192.0.2.10']);
    assert.deepEqual(out.get('x-forwarded-proto'), ['https']);
    assert.deepEqual(out.get('x-forwarded-host'), ['hub:8070']);
    assert.deepEqual(out.get('x-real-ip'), ['192.0.2.10']);
    assert.deepEqual(out.get('x-request-id'), ['abc-1']);
  });

  it('drops every forwarding-style header of an untrusted client: addresses, hosts, URLs, methods', () => {
    const spoofed = [
      'X-Forwarded-Port', 'X-Forwarded-Prefix', 'X-Forwarded-Server', 'X-Forwarded-Ssl', 'X-Forwarded-Scheme', 'X-Forwarded-Uri',
      'X-Forwarded-Client-Cert', 'X-Forwarded', 'Forwarded', 'Forwarded-For', 'X-Original-URL', 'X-Original-URI', 'X-Rewrite-URL',
      'X-Original-Host', 'X-Original-Forwarded-For', 'X-Host', 'X-HTTP-Host-Override', 'X-Client-IP', 'True-Client-IP',
      'CF-Connecting-IP', 'Fastly-Client-IP', 'X-Cluster-Client-IP', 'X-ProxyUser-Ip', 'X-HTTP-Method-Override', 'X-HTTP-Method',
      'X-Method-Override',
    ];
    const raw = ['Host', 'hub:8070', 'X-Real-IP', '6.6.6.6'];
    for (const name of spoofed) raw.push(name, name === 'Forwarded' ? 'for=6.6.6.6;host=evil;proto=http' : 'evil');
    const out = toMap(buildRequestHeaders(raw, info));
    for (const name of spoofed) assert.equal(out.has(name.toLowerCase()), false, `${name} must not reach the node`);
    assert.deepEqual(out.get('x-real-ip'), ['192.0.2.10'], 'X-Real-IP is the proxy\'s');
    assert.deepEqual(
      [...out.keys()].sort(),
      ['host', 'traceparent', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-request-id'],
      'only the proxy\'s own forwarding headers remain',
    );
  });

  it('keeps what a trusted proxy forwards beyond the headers harbor-lb sets', () => {
    const trusted = { ...info, trusted: true, clientIp: '203.0.113.7' };
    const out = toMap(buildRequestHeaders(['Host', 'hub', 'X-Forwarded-Port', '443', 'X-Original-URL', '/edge', 'Forwarded', 'for=203.0.113.7'], trusted));
    assert.deepEqual(out.get('x-forwarded-port'), ['443']);
    assert.deepEqual(out.get('x-original-url'), ['/edge']);
    assert.deepEqual(out.get('forwarded'), ['for=203.0.113.7']);
  });

  it("ignores Connection tokens naming end-to-end headers: the client's Host and body framing stay", () => {
    const out = toMap(
      buildRequestHeaders(
        [
          'Host', 'hub.example.com:8070',
          'Connection', 'X-Custom, host',
          'connection', 'Content-Length, content-type, Authorization, Cookie, Content-Encoding, Content-Range',
          'X-Custom', 'hop',
          'Content-Length', '3',
          'Content-Type', 'application/octet-stream',
          'Content-Encoding', 'gzip',
          'Content-Range', '0-2',
          'Authorization', 'Bearer t',
          'Cookie', 'sid=1',
        ],
        info,
      ),
    );
    assert.deepEqual(out.get('host'), ['hub.example.com:8070'], 'the node sees the public Host, not its own address');
    assert.equal(out.has('x-custom'), false, 'the other tokens still name hop-by-hop headers');
    assert.deepEqual(out.get('content-length'), ['3']);
    assert.deepEqual(out.get('content-type'), ['application/octet-stream']);
    assert.deepEqual(out.get('content-encoding'), ['gzip']);
    assert.deepEqual(out.get('content-range'), ['0-2']);
    assert.deepEqual(out.get('authorization'), ['Bearer t']);
    assert.deepEqual(out.get('cookie'), ['sid=1']);
  });

  it('appends to the forwarding headers of a trusted proxy', () => {
    const trusted = { ...info, trusted: true, clientIp: '203.0.113.7' };
    const raw = ['Host', 'hub', 'X-Forwarded-For', '203.0.113.7', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'hub.example.com', 'X-Request-Id', 'edge-9'];
    const out = toMap(buildRequestHeaders(raw, { ...trusted, identity: requestIdentity(raw, 'abc-1') }));
    assert.deepEqual(out.get('x-forwarded-for'), ['203.0.113.7, 192.0.2.10']);
    assert.deepEqual(out.get('x-forwarded-proto'), ['https']);
    assert.deepEqual(out.get('x-forwarded-host'), ['hub.example.com']);
    assert.deepEqual(out.get('x-real-ip'), ['203.0.113.7']);
    assert.deepEqual(out.get('x-request-id'), ['edge-9']);
  });

  it('asks for identity encoding when told to (token route), replacing what the client accepts', () => {
    const raw = ['Host', 'hub', 'Accept-Encoding', 'gzip, deflate, br', 'accept-encoding', 'zstd', 'Authorization', 'Basic eA=='];
    const token = toMap(buildRequestHeaders(raw, { ...info, identityEncoding: true }));
    assert.deepEqual(token.get('accept-encoding'), ['identity']);
    assert.deepEqual(toMap(buildRequestHeaders(['Host', 'hub'], { ...info, identityEncoding: true })).get('accept-encoding'), ['identity'], 'also when the client named none');
    assert.deepEqual(toMap(buildRequestHeaders(raw, info)).get('accept-encoding'), ['gzip, deflate, br', 'zstd'], 'other routes pass it on');
  });
});

describe('response headers sent to the client', () => {
  const rewriter = new OriginRewriter(['http://10.0.0.1:8080', 'http://10.0.0.2'], 'https://hub.example.com:8070');

  it('rewrites Location and realm that point at a node, and nothing else', () => {
    const raw = [
      'Location', 'http://10.0.0.1:8080/v2/library/a/blobs/uploads/u-1?_state=x',
      'WWW-Authenticate', 'Bearer realm="http://10.0.0.2:80/service/token",service="harbor-registry",scope="repository:library/a:pull"',
      'Connection', 'keep-alive',
      'Transfer-Encoding', 'chunked',
      'Set-Cookie', 'sid=1',
      'Set-Cookie', 'csrf=2',
      'Docker-Upload-UUID', 'u-1',
    ].map((s) => Buffer.from(s, 'latin1'));
    const out = toMap(buildResponseHeaders(raw, rewriter));
    assert.deepEqual(out.get('location'), ['https://hub.example.com:8070/v2/library/a/blobs/uploads/u-1?_state=x']);
    assert.deepEqual(out.get('www-authenticate'), [
      'Bearer realm="https://hub.example.com:8070/service/token",service="harbor-registry",scope="repository:library/a:pull"',
    ]);
    assert.equal(out.has('connection'), false);
    assert.equal(out.has('transfer-encoding'), false);
    assert.deepEqual(out.get('set-cookie'), ['sid=1', 'csrf=2'], 'repeated headers keep every value');
    assert.deepEqual(out.get('docker-upload-uuid'), ['u-1']);
  });

  it("drops the response headers the node's own Connection header names, but never Content-Length", () => {
    const raw = ['Connection', 'X-Node-Hop, close, Content-Length', 'X-Node-Hop', 'internal', 'Content-Length', '2', 'X-Kept', 'yes'].map((s) => Buffer.from(s, 'latin1'));
    const out = toMap(buildResponseHeaders(raw, rewriter));
    assert.equal(out.has('x-node-hop'), false);
    assert.deepEqual(out.get('content-length'), ['2']);
    assert.deepEqual(out.get('x-kept'), ['yes']);
  });

  it('leaves correct and foreign URLs alone', () => {
    for (const url of [
      'https://hub.example.com:8070/v2/x',
      '/v2/library/a/blobs/uploads/u-1',
      'https://s3.amazonaws.com/bucket/blob?sig=1',
      'http://10.0.0.1:80801/v2/', // a longer port is another origin
      'http://10.0.0.10/v2/', // a longer host is another origin
    ]) {
      assert.equal(rewriter.rewriteUrl(url), url);
    }
    const ok = 'Bearer realm="https://hub.example.com:8070/service/token",service="harbor-registry"';
    assert.equal(rewriter.rewriteChallenge(ok), ok);
    assert.equal(rewriter.rewriteChallenge('Basic realm="x"'), 'Basic realm="x"');
  });

  it('matches node origins case-insensitively and with an explicit default port', () => {
    assert.equal(rewriter.rewriteUrl('HTTP://10.0.0.2/v2/'), 'https://hub.example.com:8070/v2/');
    assert.equal(rewriter.rewriteUrl('http://10.0.0.2:80'), 'https://hub.example.com:8070');
  });

  it('fixes the scheme of public URLs a node built behind TLS termination', () => {
    assert.equal(rewriter.rewriteUrl('http://hub.example.com:8070/v2/a/blobs/uploads/1'), 'https://hub.example.com:8070/v2/a/blobs/uploads/1');
  });
});
