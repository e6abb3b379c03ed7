import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { it } from 'node:test';
import { send } from '../support/http-client.js';
import { pushBearer } from '../support/registry-token.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

const REPO = 'library/small-chunks';

/** A chunked PATCH of `body` in 1 KiB chunks: its head and framed bytes. */
function smallChunkPatch(host: string, path: string, body: Buffer, authorization: string): Buffer {
  const frames: Buffer[] = [Buffer.from(`PATCH ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${authorization}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`)];
  for (let at = 0; at < body.length; at += 1024) {
    const piece = body.subarray(at, at + 1024);
    frames.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  frames.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(frames);
}

/** Writes `wire` in one write and reads until `answers` answers came (each ends its head with a Location). */
function pipelined(url: string, wire: Buffer, answers: number): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname);
    let text = '';
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if ((text.match(/\r\n\r\n/g) ?? []).length >= answers) s.end();
    });
    s.on('close', () => resolve(text));
    s.write(wire);
  });
}

it('uploads in 1 KiB chunks, pipelined, reach the real registry whole (2 workers)', async (t) => {
  const { lb } = await realClusterBehindLb(t, 'e2e-small-chunks', 2, { proxy: { workers: 2 } });
  const bearer = await pushBearer(lb.url, REPO);

  // Five uploads, each of 200 KiB in 1 KiB chunks, pipelined in one write: node:http parses them
  // from reads that begin and end mid-chunk, and one read may carry the end of one and the next.
  const blobs = Array.from({ length: 5 }, () => randomBytes(200 * 1024 + 333));
  const paths: string[] = [];
  for (let i = 0; i < blobs.length; i++) {
    const post = await send(`${lb.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization: bearer } });
    assert.equal(post.status, 202, post.body.toString());
    const at = new URL(String(post.headers.location), lb.url);
    paths.push(`${at.pathname}${at.search}`);
  }
  const host = new URL(lb.url).host;
  const text = await pipelined(lb.url, Buffer.concat(blobs.map((b, i) => smallChunkPatch(host, paths[i]!, b, bearer))), blobs.length);
  const heads = text.split(/\r\n\r\n/).filter((h) => h.startsWith('HTTP/1.1 '));
  assert.deepEqual(heads.map((h) => h.slice(0, 12)), blobs.map(() => 'HTTP/1.1 202'), `the registry took every chunk of each: ${text.slice(0, 600)}`);
  for (let i = 0; i < blobs.length; i++) {
    const next = new URL(/\r\nlocation: *([^\r]+)/i.exec(heads[i]!)![1]!, lb.url);
    const digest = `sha256:${createHash('sha256').update(blobs[i]!).digest('hex')}`;
    const put = await send(`${lb.url}${next.pathname}${next.search}&digest=${encodeURIComponent(digest)}`, { method: 'PUT', headers: { authorization: bearer } });
    assert.equal(put.status, 201, put.body.toString());
    const pulled = await send(`${lb.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: bearer } });
    assert.equal(pulled.status, 200);
    assert.ok(pulled.body.equals(blobs[i]!), 'the registry has every byte');
  }
});
