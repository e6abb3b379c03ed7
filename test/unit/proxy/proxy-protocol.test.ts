import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readProxyHeader } from '../../../src/proxy/proxy-protocol.js';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(command: number, family: number, addresses: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = 0x20 | command;
  head[1] = family;
  head.writeUInt16BE(addresses.length, 2);
  return Buffer.concat([SIG, head, addresses]);
}

describe('PROXY protocol header', () => {
  it('reads v1 TCP4, TCP6 and UNKNOWN lines, leaving what follows to the client', () => {
    const r = readProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 51000 8070\r\nGET / HTTP/1.1\r\n'));
    assert.deepEqual(r, { kind: 'header', header: { length: 42, source: { address: '192.0.2.7', port: 51000 } } });
    const six = readProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 51000 8070\r\n'));
    assert.deepEqual(six.kind === 'header' && six.header.source, { address: '2001:db8::7', port: 51000 });
    assert.deepEqual(readProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', header: { length: 15, source: undefined } });
  });

  it('reads v2 PROXY over IPv4 and IPv6, and LOCAL (the balancer\'s own check) as no client', () => {
    const four = Buffer.from([192, 0, 2, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x1f, 0x86]);
    assert.deepEqual(readProxyHeader(Buffer.concat([v2(1, 0x11, four), Buffer.from('GET')])), { kind: 'header', header: { length: 28, source: { address: '192.0.2.7', port: 51000 } } });
    const six = Buffer.alloc(36);
    six.writeUInt16BE(0x2001, 0);
    six.writeUInt16BE(0x0db8, 2);
    six.writeUInt16BE(7, 14);
    six.writeUInt16BE(51000, 32);
    const r6 = readProxyHeader(v2(1, 0x21, six));
    assert.deepEqual(r6.kind === 'header' && r6.header.source, { address: '2001:db8::7', port: 51000 }, 'as Node writes peers: compressed');
    const mapped = Buffer.alloc(36);
    mapped.writeUInt16BE(0xffff, 10);
    Buffer.from([192, 0, 2, 7]).copy(mapped, 12);
    const rm = readProxyHeader(v2(1, 0x21, mapped));
    assert.deepEqual(rm.kind === 'header' && rm.header.source?.address, '::ffff:192.0.2.7', 'IPv4-mapped as normalizeIp reads it');
    assert.deepEqual(readProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { kind: 'header', header: { length: 16, source: undefined } });
  });

  it('asks for more while a header may still be coming, and says absent for anything else', () => {
    for (const partial of ['P', 'PROXY', 'PROXY TCP4 192.0.2.7']) assert.equal(readProxyHeader(Buffer.from(partial)).kind, 'more', partial);
    assert.equal(readProxyHeader(SIG.subarray(0, 5)).kind, 'more');
    assert.equal(readProxyHeader(v2(1, 0x11, Buffer.alloc(12)).subarray(0, 20)).kind, 'more');
    for (const other of ['GET /v2/ HTTP/1.1\r\n', 'POST', '\x16\x03\x01']) assert.equal(readProxyHeader(Buffer.from(other, 'latin1')).kind, 'absent', other);
  });

  it('refuses what looks like a header and is not one', () => {
    for (const bad of ['PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n', 'PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n', 'PROXY TCP4 192.0.2.7 10.0.0.1 99999 2\r\n', `PROXY UNKNOWN ${'x'.repeat(120)}\r\n`, `PROXY ${'x'.repeat(110)}`]) {
      assert.equal(readProxyHeader(Buffer.from(bad)).kind, 'invalid', bad.slice(0, 40));
    }
    const badVersion = Buffer.concat([SIG, Buffer.from([0x31, 0x11, 0, 0])]);
    assert.equal(readProxyHeader(badVersion).kind, 'invalid');
    assert.equal(readProxyHeader(Buffer.concat([SIG, Buffer.from([0x2f, 0x11, 0, 0])])).kind, 'invalid');
    assert.equal(readProxyHeader(v2(1, 0x11, Buffer.alloc(8))).kind, 'invalid', 'an IPv4 block too short');
  });
});
