import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countLinesWith } from '../../../bench/lib/count-lines.js';

describe('countLinesWith: the bench counts routing lines in a log too large for one string', () => {
  it('counts the lines holding the needle, across read boundaries, the last line without a newline too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'harbor-lb-count-lines-'));
    try {
      const file = join(dir, 'log');
      // About 3 MiB: lines of varied length land across the 1 MiB reads; every third is an event line.
      const lines = Array.from({ length: 9000 }, (_, i) => (i % 3 === 2 ? `{"event":"x","n":${i}}` : `{"event":"request","route":"v2","path":"/${'p'.repeat(i % 700)}"}`));
      writeFileSync(file, lines.join('\n') + '\n{"route":"last, no newline"}');
      assert.equal(countLinesWith(file, '"route":'), 6000 + 1);
      writeFileSync(file, '');
      assert.equal(countLinesWith(file, '"route":'), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
