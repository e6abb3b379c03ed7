import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { raiseMallocThresholds, workerEnv } from '../../../src/util/malloc-thresholds.js';

describe('malloc thresholds raised at start-up', () => {
  it('leaves an operator\'s explicit malloc setting alone (it turns the dynamic thresholds off)', () => {
    assert.equal(raiseMallocThresholds({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=134217728' }), false);
    assert.equal(raiseMallocThresholds({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576' }), false);
    assert.equal(raiseMallocThresholds({ MALLOC_TRIM_THRESHOLD_: '134217728' }), false);
    assert.equal(raiseMallocThresholds({ MALLOC_MMAP_THRESHOLD_: '1048576' }), false);
    assert.equal(raiseMallocThresholds({ MALLOC_TOP_PAD_: '1048576' }), false);
    assert.equal(raiseMallocThresholds({ MALLOC_MMAP_MAX_: '0' }), false);
    assert.equal(raiseMallocThresholds({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=1048576' }), false);
    assert.equal(raiseMallocThresholds({ GLIBC_TUNABLES: 'glibc.malloc.mmap_max=0' }), false);
  });

  it('raises them otherwise, on Linux', () => {
    assert.equal(raiseMallocThresholds({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), process.platform === 'linux');
    assert.equal(raiseMallocThresholds({}), process.platform === 'linux');
  });

  it("starts request workers with 2 malloc arenas, unless the operator chose a number", () => {
    assert.equal(workerEnv({ PATH: '/bin' }).MALLOC_ARENA_MAX, '2');
    assert.equal(workerEnv({ PATH: '/bin' }).PATH, '/bin', 'the rest of the environment as it is');
    assert.equal(workerEnv({ MALLOC_ARENA_MAX: '8' }).MALLOC_ARENA_MAX, '8');
    assert.equal(workerEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }).MALLOC_ARENA_MAX, undefined);
  });
});
