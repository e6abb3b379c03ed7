import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_WRITE, PIPE_BUF, sharedWriteLimit } from '../../../src/log/write-limit.js';

describe('sharedWriteLimit: how much one write of a shared output may carry', () => {
  it('a regular file takes a whole batch; a pipe PIPE_BUF; a file off Linux, or an fd that is not open, PIPE_BUF', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-write-limit-'));
    const fd = openSync(join(dir, 'out.log'), 'w');
    try {
      assert.equal(sharedWriteLimit(fd, 'linux'), FILE_WRITE);
      assert.equal(FILE_WRITE, 1024 * 1024);
      assert.equal(sharedWriteLimit(fd, 'darwin'), PIPE_BUF);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(sharedWriteLimit(fd, 'linux'), PIPE_BUF, 'closed');
    // A child's stdout as a pipe: what docker and a shell pipeline give.
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import { sharedWriteLimit } from ${JSON.stringify(new URL('../../../src/log/write-limit.js', import.meta.url).href)}; process.stdout.write(String(sharedWriteLimit(1, 'linux')));`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => child.on('close', resolve));
    assert.equal(out, String(PIPE_BUF));
  });

  it('the routing log of a process sharing stdout writes a whole batch at once to a file, 4 KiB pieces to a pipe', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-write-limit-'));
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    // The sizes sonic-boom hands to fs.write, said on stderr: about 130 KB of lines in one batch.
    const script = `import fs from 'node:fs';
const sizes = [];
const write = fs.write;
fs.write = (fd, data, ...rest) => { if (fd === 1) sizes.push(data.length); return write(fd, data, ...rest); };
const { createLoggers } = await import(${JSON.stringify(log)});
const { routing } = createLoggers({ level: 'info', format: 'json', shared: true, batchWindow: 1 });
for (let i = 0; i < 300; i++) routing.write({ event: 'request', reqId: 'r' + i, requestId: 'x', traceId: 'x', client: { ip: '127.0.0.1' }, method: 'GET', path: '/v2/' + 'p'.repeat(300), route: 'v2', node: null, reason: null, affinity: 'none', status: 200, durationMs: 1, attempts: 1, bytesIn: 0, bytesOut: 0 });
await routing.flush();
process.stderr.write(JSON.stringify(sizes));`;
    const largest = async (stdout: number | 'pipe'): Promise<number> => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', stdout, 'pipe'] });
      child.stdout?.resume();
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise((resolve) => child.on('close', resolve));
      assert.equal(code, 0, err);
      return Math.max(...(JSON.parse(err) as number[]));
    };
    const fd = openSync(join(dir, 'out.log'), 'w');
    try {
      assert.ok((await largest(fd)) > 100_000, 'one write for the batch');
      assert.equal(readFileSync(join(dir, 'out.log'), 'utf8').trimEnd().split('\n').length, 300);
      assert.ok((await largest('pipe')) <= PIPE_BUF, 'whole lines within PIPE_BUF');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two processes writing batches of routing lines to one inherited file: every line whole, each process in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-write-limit-'));
    const path = join(dir, 'routing.log');
    const fd = openSync(path, 'w');
    const log = new URL('../../../src/log/loggers.js', import.meta.url).href;
    // About 1.5 MB each, in batches near the 256 KiB a write may carry, both at once.
    const script = (name: string) => `import { createLoggers } from ${JSON.stringify(log)};
const { routing } = createLoggers({ level: 'info', format: 'json', shared: true, batchWindow: 1 });
let i = 0;
const burst = () => { for (let k = 0; k < 300; k++, i++) routing.write({ event: 'request', reqId: '${name}' + i, requestId: 'x', traceId: 'x', client: { ip: '127.0.0.1', user: 'ü'.repeat(i % 7) }, method: 'GET', path: '/v2/' + 'p'.repeat(600) + '/' + i, route: 'v2', node: null, reason: null, affinity: 'none', status: 200, durationMs: 1.5, attempts: 1, bytesIn: 0, bytesOut: 0 }); if (i < 2100) setImmediate(burst); else void routing.flush(); };
burst();`;
    try {
      const children = ['a', 'b'].map((name) => spawn(process.execPath, ['--input-type=module', '-e', script(name)], { stdio: ['ignore', fd, 'inherit'] }));
      const codes = await Promise.all(children.map((c) => new Promise((resolve) => c.on('close', resolve))));
      assert.deepEqual(codes, [0, 0]);
      const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, 4200);
      const ids = lines.map((l) => (JSON.parse(l) as { reqId: string }).reqId);
      for (const name of ['a', 'b']) {
        assert.deepEqual(
          ids.filter((id) => id.startsWith(name)),
          Array.from({ length: 2100 }, (_, i) => `${name}${i}`),
        );
      }
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
