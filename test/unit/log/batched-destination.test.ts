import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino, { type DestinationStream } from 'pino';
import { BatchedDestination } from '../../../src/log/batched-destination.js';
import { createLoggers } from '../../../src/log/loggers.js';
import { createPrettyDestination } from '../../../src/log/pretty-format.js';
import type { RoutingRecord } from '../../../src/proxy/routing-record.js';
import { makeTempDir } from '../../support/tmp.js';

/**
 * A FIFO already full, with a reader that reads nothing until told (non-blocking) and a writer end
 * that blocks, as a process's stdout comes: only Node's opening of stdout makes it non-blocking.
 */
function fullPipe(t: { after: (fn: () => unknown) => void }): { reader: number; writer: number; filled: number } {
  const { fifo, reader } = readFifo(t);
  const filled = fillPipe(fifo);
  return { reader, writer: openSync(fifo, constants.O_WRONLY), filled };
}

/** A new FIFO and its read end (non-blocking, reading nothing until told), both gone after the test. */
function readFifo(t: { after: (fn: () => unknown) => void }): { fifo: string; reader: number } {
  const tmp = makeTempDir('fifo');
  t.after(tmp.remove);
  const fifo = join(tmp.dir, 'out');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.after(() => closeSync(reader));
  return { fifo, reader };
}

/** Fills a FIFO through a non-blocking end of its own (closed after), so that the next write waits for a reader: the bytes written. */
function fillPipe(fifo: string): number {
  const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  let bytes = 0;
  try {
    for (;;) bytes += writeSync(filler, Buffer.alloc(4096, 0x2e));
  } catch {
    // EAGAIN: full.
  } finally {
    closeSync(filler);
  }
  return bytes;
}

/** A routing record as a child script's source text. */
const recordSource = (reqId: string) =>
  `{ event: 'request', reqId: ${JSON.stringify(reqId)}, requestId: 'x', traceId: 'x', client: { ip: '127.0.0.1' }, method: 'GET', path: '/', route: 'v2', node: null, reason: null, affinity: 'none', status: 0, durationMs: 0, attempts: 0, bytesIn: 0, bytesOut: 0 }`;

/** Runs `script` as a child whose stdout is `stdout`; killed after 15 s if it has not exited by itself. */
async function runChild(script: string, stdout: 'pipe' | number, onSpawn: (child: ChildProcess) => void = () => {}): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', stdout, 'pipe'] });
  onSpawn(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  return { code, signal, stderr, ms: performance.now() - started };
}

/** A destination that keeps each write apart, to count them. */
function recorder(): { writes: string[]; write(text: string): void; flush(cb: () => void): void; flushed: number } {
  return {
    writes: [],
    flushed: 0,
    write(text: string) {
      this.writes.push(text);
    },
    flush(cb: () => void) {
      this.flushed++;
      cb();
    },
  };
}

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The batch's timer, run by hand: `due()` is what the 20 ms timer would do now. */
function batchTimer(): { scheduleFlush: (flush: () => void) => void; due: () => void; pending: () => number } {
  let waiting: Array<() => void> = [];
  return {
    scheduleFlush: (flush) => void waiting.push(flush),
    due: () => {
      const now = waiting;
      waiting = [];
      for (const f of now) f();
    },
    pending: () => waiting.length,
  };
}

const record = (i: number): RoutingRecord => ({
  event: 'request',
  reqId: `r${i}`,
  requestId: `r${i}`,
  traceId: '0af7651916cd43dd8448eb211c80319c',
  client: { ip: '127.0.0.1' },
  method: 'GET',
  path: `/v2/p/${i}`,
  route: 'v2',
  node: null,
  reason: null,
  affinity: 'none',
  status: 200,
  durationMs: 1,
  attempts: 1,
  bytesIn: 0,
  bytesOut: 0,
});

describe('routing lines batched: at most 20 ms, one write', () => {
  it('writes the lines of one batch in one write once its time is up, in order, and nothing is lost', async () => {
    const out = recorder();
    const timer = batchTimer();
    const { routing } = createLoggers({ level: 'info', format: 'json', destination: out, scheduleFlush: timer.scheduleFlush });
    for (let i = 0; i < 100; i++) routing.write(record(i));
    await endOfTurn();
    for (let i = 100; i < 200; i++) routing.write(record(i));
    assert.equal(timer.pending(), 1, 'one timer for the batch');
    assert.equal(out.writes.length, 0, 'held until the time is up, over turns');
    timer.due();
    assert.equal(out.writes.length, 1, 'one write for the whole batch');
    const lines = out.writes[0]!.trimEnd().split('\n').map((l) => JSON.parse(l) as { reqId: string; level: string; time: string });
    assert.deepEqual(
      lines.map((l) => l.reqId),
      Array.from({ length: 200 }, (_, i) => `r${i}`),
    );
    assert.equal(lines[0]!.level, 'info');
    assert.match(lines[0]!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // A later line starts a batch of its own; nothing held, nothing written.
    timer.due();
    assert.equal(out.writes.length, 1);
    routing.write(record(200));
    timer.due();
    assert.equal(out.writes.length, 2);
  });

  it('a batch of 256 KiB goes out at once, without waiting for its time', () => {
    const out = recorder();
    const timer = batchTimer();
    const { routing } = createLoggers({ level: 'info', format: 'json', destination: out, scheduleFlush: timer.scheduleFlush });
    let i = 0;
    while (out.writes.length === 0) routing.write(record(i++));
    assert.ok(out.writes[0]!.length >= 256 * 1024 && i < 5000, `${out.writes[0]!.length} characters after ${i} lines`);
  });

  it('by default, a line is written within a moment on its own (the timer is real)', async () => {
    const out = recorder();
    const { routing } = createLoggers({ level: 'info', format: 'json', destination: out });
    routing.write(record(1));
    while (out.writes.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(out.writes.length, 1);
  });

  it('shared with other processes (request workers): each write is whole lines within PIPE_BUF, none lost, in order', async () => {
    const out = recorder();
    const timer = batchTimer();
    const { routing } = createLoggers({ level: 'info', format: 'json', destination: out, shared: true, scheduleFlush: timer.scheduleFlush });
    for (let i = 0; i < 200; i++) routing.write(record(i));
    timer.due();
    assert.ok(out.writes.length > 1, 'the turn is split');
    for (const w of out.writes) {
      assert.ok(Buffer.byteLength(w) <= 4096, `a write of ${Buffer.byteLength(w)} bytes`);
      assert.ok(w.endsWith('\n'), 'whole lines only');
    }
    const ids = out.writes.join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as { reqId: string }).reqId);
    assert.deepEqual(ids, Array.from({ length: 200 }, (_, i) => `r${i}`));
  });

  it('to stdout (bytes): the held lines are cut into Buffers of whole lines within PIPE_BUF, a longer line alone, event lines too', () => {
    const writes: unknown[] = [];
    const timer = batchTimer();
    const d = new BatchedDestination({ write: (b: string) => void writes.push(b) }, 4096, timer.scheduleFlush, true);
    const line = (i: number, size = 300) => `{"reqId":"r${i}","pad":"${'é'.repeat(size)}"}\n`;
    for (let i = 0; i < 40; i++) d.writeBatched(line(i, i === 20 ? 5000 : 300));
    d.write('{"event":"node_state"}\n');
    assert.ok(writes.every((w) => Buffer.isBuffer(w)), 'Buffers, not strings');
    const pieces = writes as Buffer[];
    for (const p of pieces.slice(0, -1)) {
      assert.ok(p.length <= 4096 || p.toString().trimEnd().split('\n').length === 1, `a piece of ${p.length} bytes holds one line only when over PIPE_BUF`);
      assert.equal(p.at(-1), 0x0a, 'whole lines only');
    }
    const text = Buffer.concat(pieces).toString();
    assert.equal(text, Array.from({ length: 40 }, (_, i) => line(i, i === 20 ? 5000 : 300)).join('') + '{"event":"node_state"}\n');
    assert.ok(pieces.length >= 8, 'cut');
    timer.due();
    assert.equal(writes.length, pieces.length, 'nothing held is written twice');
    // A batch's bytes are the destination's once handed over: the next batch is written elsewhere.
    const handed = pieces.length;
    for (let i = 40; i < 80; i++) d.writeBatched(line(i));
    timer.due();
    assert.equal(Buffer.concat(pieces.slice(0, handed)).toString(), text);
    assert.equal(Buffer.concat(pieces.slice(handed)).toString(), Array.from({ length: 40 }, (_, i) => line(40 + i)).join(''));
  });

  it('to stdout (bytes): lines of any size, encoded as they come, go out whole and in order, a batch past 256 KiB at once', () => {
    const writes: Buffer[] = [];
    const timer = batchTimer();
    const d = new BatchedDestination({ write: (b: string) => void writes.push(b as unknown as Buffer) }, Infinity, timer.scheduleFlush, true);
    // 2 bytes a character: a line of 100,000 fills 200 KB; one of 200,000 is more than the stage holds.
    const line = (name: string, size: number) => `{"reqId":"${name}","pad":"${'é'.repeat(size)}"}\n`;
    const sent = [line('a', 10), line('b', 100_000), line('c', 100_000), line('d', 10), line('e', 200_000), line('f', 10)];
    for (const l of sent.slice(0, 3)) d.writeBatched(l);
    assert.ok(writes.length > 0, 'past 256 KiB: out without waiting for the time');
    for (const l of sent.slice(3)) d.writeBatched(l);
    const before = writes.length;
    d.write('{"event":"node_state"}\n');
    assert.ok(writes.length > before, 'an event line writes what is held, then itself');
    timer.due();
    const text = Buffer.concat(writes).toString();
    assert.equal(text, sent.join('') + '{"event":"node_state"}\n');
    for (const w of writes) assert.equal(w.at(-1), 0x0a, 'whole lines only');
    // What was handed over stays as it was while the next lines are encoded.
    for (let i = 0; i < 50; i++) d.writeBatched(line(`g${i}`, 2000));
    timer.due();
    assert.equal(Buffer.concat(writes).toString(), text + Array.from({ length: 50 }, (_, i) => line(`g${i}`, 2000)).join(''));
  });

  it('writes an event line at once, after the routing lines held before it: order kept, no event held', () => {
    const out = recorder();
    const { logger, routing } = createLoggers({ level: 'info', format: 'json', destination: out });
    routing.write(record(1));
    logger.warn({ event: 'node_state', node: 'n2' }, 'node n2 is now unhealthy');
    const events = out.writes.join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as { event: string; reqId?: string }));
    assert.deepEqual(
      events.map((e) => e.event),
      ['request', 'node_state'],
    );
  });

  it('flush() writes the held lines at once and flushes the destination (shutdown)', async () => {
    const out = recorder();
    const timer = batchTimer();
    const { routing } = createLoggers({ level: 'info', format: 'json', destination: out, scheduleFlush: timer.scheduleFlush });
    routing.write(record(1));
    routing.write(record(2));
    await routing.flush();
    assert.equal(out.writes.length, 1);
    assert.equal(out.writes[0]!.trimEnd().split('\n').length, 2);
    assert.ok(out.flushed >= 1);
    timer.due();
    assert.equal(out.writes.length, 1, 'nothing written twice');
  });

  it('passes a flush through to a destination without one', async () => {
    const writes: string[] = [];
    const d = new BatchedDestination({ write: (t: string) => void writes.push(t) }, Infinity, () => {});
    d.writeBatched('a\n');
    await new Promise<void>((resolve) => d.flush(() => resolve()));
    assert.deepEqual(writes, ['a\n']);
  });

  it('pretty output: the lines of one write still print one readable line each', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const { routing } = createLoggers({ level: 'info', format: 'pretty', destination: createPrettyDestination({ colorize: false, destination: out }) });
    for (let i = 0; i < 3; i++) routing.write({ ...record(i), node: 'n1', reason: 'balanced', attempts: 1, durationMs: 2 });
    await routing.flush();
    await endOfTurn();
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 3, text);
    lines.forEach((l, i) => assert.match(l, new RegExp(`INFO: 200 GET /v2/p/${i} → n1 \\(balanced, 2\\.0 ms\\)$`)));
  });

  it('a fatal line flushes the destination synchronously, as pino asks of it', () => {
    let synced = 0;
    const out = { ...recorder(), flushSync: () => void synced++ };
    const { logger, routing } = createLoggers({ level: 'info', format: 'json', destination: out, scheduleFlush: () => {} });
    routing.write(record(1));
    logger.fatal({ event: 'last_words' }, 'stopping');
    assert.equal(synced, 1);
    assert.deepEqual(out.writes.join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as { event: string }).event), ['request', 'last_words']);
  });

  // The thread pool (one thread here) is kept busy, so an asynchronous write started before the
  // fatal line's flushSync cannot have happened by then: the first held lines were written after
  // the fatal line (every time so; under load, now and then without the busy thread).
  it('to a real stdout shared with other processes: every line whole and in order, a fatal line flushed before exit', () => {
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    const script = `import { createLoggers } from ${JSON.stringify(log)};
import { pbkdf2 } from 'node:crypto';
pbkdf2('busy', 'thread pool', 400000, 64, 'sha512', () => {});
const { logger, routing } = createLoggers({ level: 'info', format: 'json', shared: true });
for (let i = 0; i < 300; i++) routing.write({ event: 'request', reqId: 'r' + i, requestId: 'x', traceId: 'x', client: { ip: '127.0.0.1', user: 'ü'.repeat(i % 7) }, method: 'GET', path: '/v2/é/' + i, route: 'v2', node: null, reason: null, affinity: 'none', status: 200, durationMs: 1.5, attempts: 1, bytesIn: 0, bytesOut: 0 });
logger.fatal({ event: 'last_words' }, 'stopping');
process.exit(0);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1' } });
    assert.equal(child.status, 0, child.stderr);
    const lines = child.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { reqId?: string; event: string; path?: string });
    assert.deepEqual(
      lines.map((l) => l.reqId ?? l.event),
      [...Array.from({ length: 300 }, (_, i) => `r${i}`), 'last_words'],
    );
    assert.equal(lines[299]!.path, '/v2/é/299');
  });

  it('a fatal line that takes the held lines past 256 KiB still comes after them', () => {
    const destination = new URL('../../../src/log/batched-destination.js', import.meta.url).href;
    // Held lines just under 256 KiB: the fatal line tips them over, which writes held lines at once.
    const script = `import pino from 'pino';
import { pbkdf2 } from 'node:crypto';
import { BatchedDestination } from ${JSON.stringify(destination)};
pbkdf2('busy', 'thread pool', 400000, 64, 'sha512', () => {});
const d = new BatchedDestination(pino.destination({ dest: 1, sync: false, contentMode: 'buffer', maxWrite: 4096 }), 4096, () => {}, true);
const logger = pino({ base: undefined }, d);
let held = 0;
for (let i = 0; held < 262144 - 300; i++) {
  const line = JSON.stringify({ reqId: 'r' + i, pad: 'x'.repeat(Math.min(200, 262144 - 300 - held)) }) + '\\n';
  d.writeBatched(line);
  held += line.length;
}
logger.fatal({ event: 'last_words' }, 'stopping');
process.exit(0);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, cwd: fileURLToPath(new URL('../../..', import.meta.url)) });
    assert.equal(child.status, 0, child.stderr);
    const names = child.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { reqId?: string; event?: string }).reqId ?? (JSON.parse(l) as { event: string }).event);
    assert.deepEqual(names, [...Array.from({ length: names.length - 1 }, (_, i) => `r${i}`), 'last_words'], 'every held line, in order, then the fatal line');
    assert.ok(names.length > 1000);
  });

  // sonic-boom's own flushSync tries again forever on any error: a crash with lines held, once
  // nobody read stdout any more (EPIPE), hung instead of exiting.
  it('a process that crashes with lines held after its reader left exits, not hangs', async () => {
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    const script = `import { createLoggers } from ${JSON.stringify(log)};
const { routing } = createLoggers({ level: 'info', format: 'json', shared: true });
for (let i = 0; i < 100; i++) routing.write(${recordSource('r')});
throw new Error('crash');`;
    // Nobody reads stdout from here on, before the child has even started: its writes fail with EPIPE.
    const run = await runChild(script, 'pipe', (child) => child.stdout!.destroy());
    assert.equal(run.signal, null, 'it exited by itself');
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /crash/);
  });

  it('a process that crashes with lines held while its stdout pipe is full exits within the flush wait', { skip: process.platform !== 'linux' && 'a FIFO' }, async (t) => {
    const { writer } = fullPipe(t);
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    const script = `import { createLoggers } from ${JSON.stringify(log)};
const { routing } = createLoggers({ level: 'info', format: 'json' });
routing.write(${recordSource('held')});
throw new Error('crash');`;
    const run = await runChild(script, writer, () => closeSync(writer));
    assert.equal(run.signal, null, 'it exited by itself');
    assert.equal(run.code, 1, run.stderr);
    assert.ok(run.ms < 6_000, 'within the flush wait (2 s), not at the kill');
  });

  it('a fatal line in a process that lives on, its output full for longer than the flush wait: every line out once the reader reads', { skip: process.platform !== 'linux' && 'a FIFO' }, async (t) => {
    const { reader, writer, filled } = fullPipe(t);
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    const script = `import { createLoggers } from ${JSON.stringify(log)};
const { logger, routing } = createLoggers({ level: 'info', format: 'json' });
routing.write(${recordSource('held')});
logger.fatal({ event: 'last_words' }, 'bad, going on');
process.stderr.write('fatal returned\\n');
routing.write(${recordSource('after')});
process.stdin.once('data', () => routing.flush().then(() => process.exit(0)));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', writer, 'pipe'] });
    closeSync(writer);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    t.after(() => clearTimeout(timer));
    while (!stderr.includes('fatal returned')) await once(child.stderr!, 'data');
    // Past the flush wait: the reader reads now, and the child flushes and exits.
    child.stdin!.write('go');
    const exited = once(child, 'exit');
    // Read to the end: the child holds the only writer, so the end comes when it exits.
    const got: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    const deadline = performance.now() + 15_000;
    while (performance.now() < deadline) {
      let n: number;
      try {
        n = readSync(reader, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      if (n === 0) break;
      got.push(Buffer.from(buf.subarray(0, n)));
    }
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, stderr);
    const text = Buffer.concat(got).subarray(filled).toString();
    const names = text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { reqId?: string; event: string }).reqId ?? (JSON.parse(l) as { event: string }).event);
    assert.deepEqual(names, ['held', 'last_words', 'after'], 'none dropped at the flush wait, in order');
  });

  it('a process that crashes in the same turn still writes the lines it held (on exit, as pino does)', () => {
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    const script = `import { createLoggers } from ${JSON.stringify(log)};
const { routing } = createLoggers({ level: 'info', format: 'json' });
routing.write({ event: 'request', reqId: 'last-before-crash', requestId: 'x', traceId: 'x', client: { ip: '127.0.0.1' }, method: 'GET', path: '/', route: 'v2', node: null, reason: null, affinity: 'none', status: 0, durationMs: 0, attempts: 0, bytesIn: 0, bytesOut: 0 });
throw new Error('crash');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(child.status, 0, 'the script crashes');
    assert.match(child.stderr, /crash/);
    assert.match(child.stdout, /"reqId":"last-before-crash"/);
  });
});

describe('BatchedDestination: a flush at shutdown', () => {
  // A worker exits right after its flush: a write still in flight (a full pipe: sonic-boom tries
  // again after EAGAIN) was lost, as the exit-time flush skips it.
  it('waits for a write in flight to a full pipe, and calls back once all of it is out', { skip: process.platform !== 'linux' && 'a FIFO' }, async (t) => {
    const { fifo, reader } = readFifo(t);
    // pino's own destination (sonic-boom), as the workers' stdout has it.
    const inner = pino.destination({ dest: openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK), sync: false, contentMode: 'buffer' });
    t.after(() => inner.destroy());
    const d = new BatchedDestination(inner as DestinationStream, Infinity, () => {}, true);
    // More than the pipe holds (64 KiB), in one batch: part of it waits in sonic-boom.
    const line = `${JSON.stringify({ level: 'info', event: 'request', pad: 'x'.repeat(1000) })}\n`;
    const batch = line.repeat(200);
    d.writeBatched(batch);
    let flushed = false;
    d.flush(() => (flushed = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(flushed, false, 'not called back while the write is in flight');
    // The reader reads on; the flush is called back once every byte is out.
    const got: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    let total = 0;
    for (let i = 0; i < 10_000 && !(flushed && total === Buffer.byteLength(batch)); i++) {
      try {
        const n = readSync(reader, buf);
        got.push(Buffer.from(buf.subarray(0, n)));
        total += n;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    assert.ok(flushed, 'called back');
    assert.equal(Buffer.concat(got).toString(), batch, 'every byte out, in order');
  });
});
