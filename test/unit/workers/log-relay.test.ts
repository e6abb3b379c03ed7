import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LineRelay, relaysWorkerLogs } from '../../../src/workers/log-relay.js';
import { makeTempDir } from '../../support/tmp.js';

const TEXT = Buffer.from('{"a":1}\n{"b":"é ü 日本"}\n{"c":3}\n', 'utf8');

describe('LineRelay: whole lines out of pieces cut anywhere', () => {
  it('passes on only whole lines, in order, whatever the cut (inside a line or a character)', () => {
    for (let cut = 1; cut < TEXT.length; cut++) {
      for (let cut2 = cut; cut2 < TEXT.length; cut2 += 3) {
        const out: string[] = [];
        const relay = new LineRelay((lines) => out.push(lines));
        relay.push(TEXT.subarray(0, cut));
        relay.push(TEXT.subarray(cut, cut2));
        relay.push(TEXT.subarray(cut2));
        relay.end();
        assert.equal(out.join(''), TEXT.toString('utf8'), `cut at ${cut} and ${cut2}`);
        for (const piece of out) assert.ok(piece.endsWith('\n'), `a piece ends at a line end: ${JSON.stringify(piece)}`);
      }
    }
  });

  it('a last line without its end (a worker that died writing it) goes on, ended', () => {
    const out: string[] = [];
    const relay = new LineRelay((lines) => out.push(lines));
    relay.push(Buffer.from('{"a":1}\n{"b":'));
    relay.end();
    assert.deepEqual(out, ['{"a":1}\n', '{"b":\n']);
  });
});

describe('relaysWorkerLogs: only a pipe or a socket is relayed', () => {
  it('a pipe yes; a regular file, or a descriptor that is not open, no', (t) => {
    const tmp = makeTempDir('log-relay');
    t.after(tmp.remove);
    const file = join(tmp.dir, 'log');
    writeFileSync(file, '');
    const fileFd = openSync(file, 'a');
    t.after(() => closeSync(fileFd));
    assert.equal(relaysWorkerLogs(fileFd), false);
    const fifo = join(tmp.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Read and write: a FIFO opened so does not wait for the other end (Linux).
    const fifoFd = openSync(fifo, constants.O_RDWR);
    t.after(() => closeSync(fifoFd));
    assert.equal(relaysWorkerLogs(fifoFd), true);
    assert.equal(relaysWorkerLogs(987_654), false);
  });
});
