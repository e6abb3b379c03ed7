import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startApp, type StartedApp } from '../support/app.js';
import { startFromFile } from '../support/file-app.js';
import { send, type Reply } from '../support/http-client.js';
import { parseExposition, samplesOf } from '../support/prometheus-text.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

interface Blob {
  bytes: Buffer;
  digest: string;
  path: string;
}

const blob = (size: number): Blob => {
  const bytes = randomBytes(size);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, digest, path: `/v2/lib/app/blobs/${digest}` };
};

/**
 * A registry node for some blobs, with the registry's own answers by Authorization (Bearer good:
 * 200; Bearer other: 404, another repository's token; none: 401). GETs are counted by digest; a
 * Range past the end gets 416, any other Range the whole blob. `wrong` sends other bytes.
 */
async function blobsNode(t: { after: (fn: () => unknown) => void }, blobs: Blob[], opts: { wrong?: boolean } = {}) {
  const gets = new Map<string, number>();
  const counts = { heads: 0 };
  const server = await startServer((req, res) => {
    req.resume();
    const b = blobs.find((x) => x.path === req.url);
    if (b === undefined) return void res.writeHead(404).end();
    const auth = req.headers.authorization;
    if (auth !== 'Bearer good') {
      const status = auth === 'Bearer other' ? 404 : 401;
      const text = JSON.stringify({ errors: [{ code: status === 404 ? 'BLOB_UNKNOWN' : 'UNAUTHORIZED', message: 'no' }] });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      return void res.end(req.method === 'HEAD' ? undefined : text);
    }
    const head = { 'content-type': 'application/octet-stream', 'content-length': b.bytes.length, 'docker-content-digest': b.digest, 'accept-ranges': 'bytes' };
    if (req.method === 'HEAD') {
      counts.heads++;
      return void res.writeHead(200, head).end();
    }
    gets.set(b.digest, (gets.get(b.digest) ?? 0) + 1);
    const start = /^bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1];
    if (start !== undefined && Number(start) >= b.bytes.length) return void res.writeHead(416, { 'content-range': `bytes */${b.bytes.length}` }).end();
    res.writeHead(200, head);
    res.end(opts.wrong ? Buffer.from(b.bytes).fill(7, 0, 100) : b.bytes);
  });
  t.after(() => server.close());
  return { url: server.url, gets: (b: Blob) => gets.get(b.digest) ?? 0, counts };
}

const pull = (lb: { url: string }, b: Blob, headers: Record<string, string> = { authorization: 'Bearer good' }): Promise<Reply> => send(`${lb.url}${b.path}`, { headers });
const sha = (body: Buffer) => `sha256:${createHash('sha256').update(body).digest('hex')}`;

interface CacheStatus {
  cache?: { dir: string; maxSize: number; size: number; blobs: number };
}
const status = async (lb: { adminUrl: string }) => JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as CacheStatus;

/** Until the cache keeps `blobs` blobs (an eviction runs after the pull that made room for it ended). */
async function cacheHolds(lb: { adminUrl: string }, blobs: number): Promise<NonNullable<CacheStatus['cache']>> {
  for (let i = 0; i < 1000; i++) {
    const c = (await status(lb)).cache!;
    if (c.blobs === blobs) return c;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`the cache never held ${blobs} blob(s): ${JSON.stringify((await status(lb)).cache)}`);
}

async function withCache(t: { after: (fn: () => unknown) => void }, urls: string[], cache: { dir?: string; maxSize?: number | string } = {}, extra: Parameters<typeof startApp>[1] = {}): Promise<StartedApp & { dir: string }> {
  const tmp = cache.dir === undefined ? makeTempDir('cache') : undefined;
  const dir = cache.dir ?? tmp!.dir;
  const lb = await startApp(urls, { cache: { dir, maxSize: cache.maxSize ?? '1GiB' }, ...extra });
  t.after(async () => {
    await lb.close();
    tmp?.remove();
  });
  return { ...lb, dir };
}

/** A blob of `size` pulled through a harbor-lb that kept it in a cache folder and stopped: the folder a restart finds. */
async function keptByEarlierRun(t: { after: (fn: () => unknown) => void }, size: number) {
  const a = blob(size);
  const node = await blobsNode(t, [a]);
  const tmp = makeTempDir('cache-restart');
  t.after(() => tmp.remove());
  const first = await startApp([node.url], { cache: { dir: tmp.dir } });
  await pull(first, a);
  await first.close();
  return { a, node, dir: tmp.dir };
}

/** A cache with room for two of three blobs, holding the first two (a kept before b). */
async function cacheFullOfTwo(t: { after: (fn: () => unknown) => void }) {
  const [a, b, c] = [blob(100_000), blob(100_000), blob(100_000)];
  const node = await blobsNode(t, [a, b, c]);
  const lb = await withCache(t, [node.url], { maxSize: 250_000 });
  await pull(lb, a);
  await pull(lb, b);
  await cacheHolds(lb, 2);
  return { a, b, c, node, lb };
}

describe('the blob cache (cache.dir)', () => {
  it('a verified pull is kept; the next client is served from it after the registry said yes to that client: no node read', async (t) => {
    const a = blob(1024 * 1024 + 3);
    const node = await blobsNode(t, [a]);
    const lb = await withCache(t, [node.url]);
    const first = await pull(lb, a);
    assert.equal(sha(first.body), a.digest);
    const second = await pull(lb, a);
    assert.equal(second.status, 200);
    assert.equal(sha(second.body), a.digest);
    assert.equal(second.headers['docker-content-digest'], a.digest);
    assert.equal(second.headers['content-length'], String(a.bytes.length));
    assert.equal(second.headers['content-type'], 'application/octet-stream');
    assert.deepEqual([node.gets(a), node.counts.heads], [1, 1], 'one node read; the second client asked with a HEAD');
    const lines = await lb.logs.waitForRequests(2);
    assert.deepEqual(lines.map((l) => [l.reason, l.node, l.status]), [['balanced', 'n1', 200], ['cache', 'n1', 200]]);
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.equal(samplesOf(families, 'harbor_lb_cache_hits_total')[0]!.value, 1);
    assert.equal(samplesOf(families, 'harbor_lb_cache_bytes_total')[0]!.value, a.bytes.length);
    assert.equal(samplesOf(families, 'harbor_lb_cache_size_bytes')[0]!.value, a.bytes.length);
    assert.deepEqual((await status(lb)).cache, { dir: lb.dir, maxSize: 2 ** 30, size: a.bytes.length, blobs: 1 });
  });

  it("a client the registry refuses gets the registry's own 401 or 404 and no byte of the cached blob", async (t) => {
    const a = blob(64 * 1024);
    const node = await blobsNode(t, [a]);
    const lb = await withCache(t, [node.url]);
    await pull(lb, a);
    await cacheHolds(lb, 1);
    const anonymous = await pull(lb, a, {});
    const otherRepo = await pull(lb, a, { authorization: 'Bearer other' });
    assert.equal(anonymous.status, 401);
    assert.equal(otherRepo.status, 404);
    for (const r of [anonymous, otherRepo]) assert.ok(!r.body.includes(a.bytes.subarray(0, 64)), 'no blob bytes');
    const lines = await lb.logs.waitForRequests(3);
    assert.equal(lines.filter((l) => l.reason === 'cache').length, 0);
  });

  it('serves a Range from the cache (docker resumes with one): 206 with the exact bytes; a Range past the end is the registry\'s to answer', async (t) => {
    const a = blob(300_000);
    const node = await blobsNode(t, [a]);
    const lb = await withCache(t, [node.url]);
    await pull(lb, a);
    const part = await pull(lb, a, { authorization: 'Bearer good', range: 'bytes=1000-1999' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${a.bytes.length}`);
    assert.equal(part.headers['content-length'], '1000');
    assert.deepEqual(part.body, a.bytes.subarray(1000, 2000));
    const open = await pull(lb, a, { authorization: 'Bearer good', range: 'bytes=299000-' });
    assert.equal(open.status, 206);
    assert.deepEqual(open.body, a.bytes.subarray(299_000));
    const suffix = await pull(lb, a, { authorization: 'Bearer good', range: 'bytes=-10' });
    assert.deepEqual([suffix.status, suffix.headers['content-range']], [206, `bytes ${a.bytes.length - 10}-${a.bytes.length - 1}/${a.bytes.length}`]);
    assert.deepEqual(suffix.body, a.bytes.subarray(-10));
    assert.equal(node.gets(a), 1, 'the ranges came from the cache');
    const past = await pull(lb, a, { authorization: 'Bearer good', range: `bytes=${a.bytes.length}-` });
    assert.equal(past.status, 416);
    assert.equal(node.gets(a), 2, 'the unsatisfiable range went to a node');
    const lines = await lb.logs.waitForRequests(5);
    assert.deepEqual(lines.map((l) => l.reason), ['balanced', 'cache', 'cache', 'cache', 'balanced']);
  });

  it('survives a restart: a new harbor-lb on the same folder finds the blobs and serves them', async (t) => {
    const { a, node, dir } = await keptByEarlierRun(t, 100_000);
    const lb = await startApp([node.url], { cache: { dir } });
    t.after(() => lb.close());
    assert.equal((await status(lb)).cache?.blobs, 1, 'found at start');
    assert.equal(sha((await pull(lb, a)).body), a.digest);
    assert.equal(node.gets(a), 1);
  });

  it('a cached file whose bytes changed on disk (kept before a restart) is caught as it is read: the client is cut, the file goes, the next pull reads a node', async (t) => {
    const { a, node, dir } = await keptByEarlierRun(t, 300_000);
    const file = join(dir, 'sha256', a.digest.slice(7));
    const bytes = readFileSync(file);
    bytes[123_456] = bytes[123_456]! ^ 0xff;
    writeFileSync(file, bytes);
    const lb = await startApp([node.url], { cache: { dir } });
    t.after(() => lb.close());
    // Not verified by this process yet: a Range of it is the node's to answer.
    const part = await pull(lb, a, { authorization: 'Bearer good', range: 'bytes=0-99' });
    assert.equal(node.gets(a), 2, 'the Range went to the node');
    assert.equal(part.status, 200);
    await assert.rejects(pull(lb, a), 'the whole read is cut before its end');
    assert.ok(!existsSync(file), 'the file is removed');
    await lb.logs.waitFor((l) => l.event === 'cache_blob_corrupt' && l.digest === a.digest, 5_000);
    const line = (await lb.logs.waitForRequests(2))[1]!;
    assert.deepEqual([line.reason, line.error], ['cache', 'CACHE_READ_FAILED']);
    assert.equal(sha((await pull(lb, a)).body), a.digest);
    assert.equal(node.gets(a), 3, 'read from the node again');
  });

  it("a client the registry refuses does not make a cached blob recently used", async (t) => {
    const { a, b, c, node, lb } = await cacheFullOfTwo(t);
    assert.equal((await pull(lb, a, {})).status, 401);
    await pull(lb, c);
    await cacheHolds(lb, 2);
    assert.deepEqual(readdirSync(join(lb.dir, 'sha256')).sort(), [b.digest.slice(7), c.digest.slice(7)].sort(), 'a went: the refused lookup did not count as a use');
  });

  it('keeps within maxSize, least recently used out first', async (t) => {
    const { a, b, c, node, lb } = await cacheFullOfTwo(t);
    // a is read again: b is now the least recently used.
    assert.equal(sha((await pull(lb, a)).body), a.digest);
    await pull(lb, c);
    const held = await cacheHolds(lb, 2);
    assert.equal(held.size, 200_000);
    assert.deepEqual(readdirSync(join(lb.dir, 'sha256')).sort(), [a.digest.slice(7), c.digest.slice(7)].sort());
    await pull(lb, b);
    assert.deepEqual([node.gets(a), node.gets(b), node.gets(c)], [1, 2, 1], 'b was read again, a was not');
  });

  it('spill files on another file system (coalesce.dir on tmpfs): the verified blob is copied in whole, and served', async (t) => {
    if (!existsSync('/dev/shm')) return t.skip('no /dev/shm here');
    const a = blob(2 * 1024 * 1024 + 1);
    const node = await blobsNode(t, [a]);
    const spill = mkdtempSync('/dev/shm/harbor-lb-spill-');
    t.after(() => rmSync(spill, { recursive: true, force: true }));
    const lb = await withCache(t, [node.url], {}, { coalesce: { enabled: true, dir: spill } });
    assert.notEqual(statSync(spill).dev, statSync(lb.dir).dev, 'two file systems: a link between them fails with EXDEV');
    await pull(lb, a);
    await cacheHolds(lb, 1);
    assert.deepEqual(readdirSync(join(lb.dir, 'tmp')), [], 'the copy was renamed in whole');
    assert.equal(sha((await pull(lb, a)).body), a.digest);
    assert.equal(node.gets(a), 1, 'the second pull came from the copy');
  });

  it('a blob that does not match its digest is never kept', async (t) => {
    const a = blob(100_000);
    const node = await blobsNode(t, [a], { wrong: true });
    const lb = await withCache(t, [node.url]);
    await pull(lb, a).catch(() => undefined);
    await pull(lb, a).catch(() => undefined);
    assert.equal(node.gets(a), 2);
    assert.deepEqual((await status(lb)).cache, { dir: lb.dir, maxSize: 2 ** 30, size: 0, blobs: 0 });
  });

  it('with two request workers, a blob kept by one is served by both, and the control plane counts it once', async (t) => {
    const a = blob(200_000);
    const node = await blobsNode(t, [a]);
    const lb = await withCache(t, [node.url], {}, { proxy: { workers: 2 } });
    await pull(lb, a);
    assert.deepEqual((await status(lb)).cache?.blobs, 1);
    // Ranges first, whichever worker takes them: the one that kept the blob told the other it matched.
    for (let i = 0; i < 6; i++) assert.deepEqual((await pull(lb, a, { authorization: 'Bearer good', range: `bytes=${i}-${i + 9}` })).body, a.bytes.subarray(i, i + 10));
    for (let i = 0; i < 6; i++) assert.equal(sha((await pull(lb, a)).body), a.digest);
    assert.equal(node.gets(a), 1);
    const families = await parseExposition((await send(`${lb.adminUrl}/metrics`)).body.toString());
    assert.equal(samplesOf(families, 'harbor_lb_cache_hits_total')[0]!.value, 12);
  });

  it('a reload shrinks the cache live (and takes coalesce.enabled live)', async (t) => {
    const [a, b] = [blob(100_000), blob(100_000)];
    const node = await blobsNode(t, [a, b]);
    const tmp = makeTempDir('cache-reload');
    t.after(() => tmp.remove());
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const yaml = (maxSize: number, coalesce: boolean) =>
      [
        'listen: {address: 127.0.0.1, port: 0}',
        'admin: {address: 127.0.0.1, port: 0}',
        `nodes: [{name: n1, url: "${node.url}"}]`,
        'health: {enabled: false}',
        `coalesce: {enabled: ${coalesce}}`,
        `cache: {dir: "${join(tmp.dir, 'cache')}", maxSize: ${maxSize}}`,
      ].join('\n');
    writeFileSync(file, yaml(1_000_000, true));
    const { app, adminUrl, proxyUrl } = await startFromFile(file);
    t.after(() => app.close(0));
    await pull({ url: proxyUrl }, a);
    await pull({ url: proxyUrl }, b);
    await cacheHolds({ adminUrl }, 2);
    writeFileSync(file, yaml(150_000, false));
    const reloaded = JSON.parse((await send(`${adminUrl}/-/reload`, { method: 'POST' })).body.toString()) as { applied: string[]; restartNeeded: string[] };
    assert.deepEqual(reloaded.applied.sort(), ['cache.maxSize', 'coalesce.enabled']);
    assert.deepEqual(reloaded.restartNeeded, []);
    assert.equal((await cacheHolds({ adminUrl }, 1)).maxSize, 150_000);
    assert.equal(readdirSync(join(tmp.dir, 'cache', 'sha256')).length, 1);
  });
});
