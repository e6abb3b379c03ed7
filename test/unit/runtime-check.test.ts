import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MIN_NODE_MAJOR, runtimeProblem } from '../../src/runtime-check.js';

describe('the Node.js floor', () => {
  it('refuses an end-of-life Node.js, naming both versions', () => {
    const problem = runtimeProblem('v20.20.2');
    assert.match(problem ?? '', /needs Node\.js 24 or later/);
    assert.match(problem ?? '', /this is Node\.js v20\.20\.2/);
    assert.ok(runtimeProblem('v22.12.0') !== undefined);
    assert.ok(runtimeProblem('garbage') !== undefined);
  });

  it('takes the floor and anything newer', () => {
    assert.equal(MIN_NODE_MAJOR, 24);
    assert.equal(runtimeProblem('v24.0.0'), undefined);
    assert.equal(runtimeProblem('v26.10.0'), undefined);
    // The runtime the tests run on is a supported one (the project's own `node` devDependency).
    assert.equal(runtimeProblem(process.version), undefined);
  });
});
