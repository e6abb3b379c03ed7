import assert from 'node:assert/strict';
import { it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { acceptedFlags, choseMaglev, HEAP_GROWING, NO_MAGLEV, NO_WASM_TIER_UP, nodeAccepts, wantedFlags, workerExecArgv } from '../../../src/workers/worker-exec-argv.js';
import { makeTempDir } from '../../support/tmp.js';

it("a worker runs with the control plane's flags, less the test runner's and debugger's, and a young generation capped unless one was chosen", () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps', '--test-timeout=1', '--inspect=0'], {}), ['--enable-source-maps', '--max-semi-space-size=16']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=64'], {}), ['--max-semi-space-size=64'], 'the operator chose on the command line');
  assert.deepEqual(workerExecArgv(['--max_semi_space_size=8'], {}), ['--max_semi_space_size=8']);
  assert.deepEqual(workerExecArgv(['--min-semi-space-size=4'], {}), ['--min-semi-space-size=4', '--max-semi-space-size=16'], 'a smallest size alone leaves the largest to harbor-lb');
  assert.deepEqual(workerExecArgv([], { NODE_OPTIONS: '--max-old-space-size=512 --max-semi-space-size=32' }), [], 'or in NODE_OPTIONS, which the worker inherits');
  assert.deepEqual(workerExecArgv([], { NODE_OPTIONS: '--max-old-space-size=512' }), ['--max-semi-space-size=16']);
});

it('a worker runs without Maglev and with a slower-growing heap when this Node knows the flags, unless the operator chose about them', () => {
  const both = new Set([NO_MAGLEV, HEAP_GROWING]);
  assert.deepEqual(workerExecArgv([], {}, both), ['--max-semi-space-size=16', '--no-maglev', '--heap-growing-percent=50']);
  assert.deepEqual(workerExecArgv([], {}, new Set([HEAP_GROWING])), ['--max-semi-space-size=16', '--heap-growing-percent=50'], 'a Node without a flag would refuse to start');
  assert.deepEqual(workerExecArgv([], {}), ['--max-semi-space-size=16']);
  assert.deepEqual(workerExecArgv(['--maglev'], {}, both), ['--maglev', '--max-semi-space-size=16', '--heap-growing-percent=50'], 'the operator chose Maglev');
  assert.deepEqual(workerExecArgv(['--no_maglev'], {}, both), ['--no_maglev', '--max-semi-space-size=16', '--heap-growing-percent=50']);
  assert.deepEqual(workerExecArgv(['--maglev-inlining'], {}, both), ['--maglev-inlining', '--max-semi-space-size=16', '--heap-growing-percent=50'], 'a Maglev tuning is a choice to keep it');
  assert.deepEqual(workerExecArgv(['--heap_growing_percent=100'], {}, both), ['--heap_growing_percent=100', '--max-semi-space-size=16', '--no-maglev'], 'the operator chose the growth');
  assert.deepEqual(wantedFlags(['--maglev', '--heap-growing-percent=10', '--liftoff-only']), []);
});

it("a worker leaves WebAssembly (undici's parser) at its baseline tier, unless the operator chose about its tiers", () => {
  const all = new Set([NO_MAGLEV, HEAP_GROWING, ...NO_WASM_TIER_UP]);
  assert.deepEqual(workerExecArgv([], {}, all), ['--max-semi-space-size=16', '--no-maglev', '--heap-growing-percent=50', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering']);
  assert.deepEqual(workerExecArgv([], {}, new Set([NO_MAGLEV, HEAP_GROWING])), ['--max-semi-space-size=16', '--no-maglev', '--heap-growing-percent=50'], 'not on a Node without the flags');
  const chosen = ['--no-liftoff', '--liftoff-only', '--no_liftoff', '--noliftoff', '--wasm-tier-up', '--nowasm-tier-up', '--no-wasm-dynamic-tiering', '--wasm_dynamic_tiering', '--wasm-tiering-budget=1000', '--wasm-eager-tier-up-function=3'];
  for (const flag of chosen) assert.deepEqual(wantedFlags([flag]), [NO_MAGLEV, HEAP_GROWING], `${flag} is the operator's choice`);
  for (const other of ['--wasm-max-mem-pages=100', '--trace-liftoff', '--regexp-tier-up']) {
    assert.deepEqual(wantedFlags([other]), [NO_MAGLEV, HEAP_GROWING, ...NO_WASM_TIER_UP], `${other} is not about WebAssembly's tiers`);
  }
  assert.deepEqual(wantedFlags(['--nomaglev']), [HEAP_GROWING, ...NO_WASM_TIER_UP], 'V8 reads --nomaglev too');
});

it('asks Node once for every flag it wants, and one by one only when it refused', () => {
  assert.deepEqual([...acceptedFlags(process.execPath, [NO_MAGLEV, HEAP_GROWING, ...NO_WASM_TIER_UP])], [NO_MAGLEV, HEAP_GROWING, ...NO_WASM_TIER_UP], 'Node 24 knows them all');
  assert.deepEqual([...acceptedFlags(process.execPath, [NO_MAGLEV, '--no-such-v8-flag-here', HEAP_GROWING])], [NO_MAGLEV, HEAP_GROWING]);
  assert.deepEqual([...acceptedFlags(process.execPath, [])], []);
});

it('asks Node whether it starts with a flag: it refuses one it does not know', () => {
  assert.equal(nodeAccepts(process.execPath, '--no-maglev'), true, 'Node 24 has Maglev');
  assert.equal(nodeAccepts(process.execPath, '--no-such-v8-flag-here'), false);
});

it("asks without NODE_OPTIONS: a preload there that keeps a process alive (a tracing agent's timer) does not hold the answer", (t) => {
  const tmp = makeTempDir('exec-argv');
  t.after(tmp.remove);
  const preload = `${tmp.dir}/agent.cjs`;
  writeFileSync(preload, 'setInterval(() => {}, 1000);\n');
  const before = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `--require ${preload}`;
  t.after(() => (before === undefined ? delete process.env.NODE_OPTIONS : (process.env.NODE_OPTIONS = before)));
  assert.equal(nodeAccepts(process.execPath, '--no-maglev'), true);
});

it("tells an operator's Maglev flag on the command line: then Node is not asked", () => {
  assert.equal(choseMaglev(['--maglev']), true);
  assert.equal(choseMaglev(['--no_maglev']), true);
  assert.equal(choseMaglev(['--max-semi-space-size=16']), false);
});
