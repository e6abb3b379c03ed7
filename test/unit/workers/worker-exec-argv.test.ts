import assert from 'node:assert/strict';
import { it } from 'node:test';
import { workerExecArgv } from '../../../src/workers/worker-exec-argv.js';

it("a worker runs with the control plane's flags, less the test runner's and debugger's, and a young generation capped unless one was chosen", () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps', '--test-timeout=1', '--inspect=0'], {}), ['--enable-source-maps', '--max-semi-space-size=16']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=64'], {}), ['--max-semi-space-size=64'], 'the operator chose on the command line');
  assert.deepEqual(workerExecArgv(['--max_semi_space_size=8'], {}), ['--max_semi_space_size=8']);
  assert.deepEqual(workerExecArgv(['--min-semi-space-size=4'], {}), ['--min-semi-space-size=4', '--max-semi-space-size=16'], 'a smallest size alone leaves the largest to harbor-lb');
  assert.deepEqual(workerExecArgv([], { NODE_OPTIONS: '--max-old-space-size=512 --max-semi-space-size=32' }), [], 'or in NODE_OPTIONS, which the worker inherits');
  assert.deepEqual(workerExecArgv([], { NODE_OPTIONS: '--max-old-space-size=512' }), ['--max-semi-space-size=16']);
});
