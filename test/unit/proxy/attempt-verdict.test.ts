import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeFailure } from '../../../src/nodes/node-failure.js';
import { attemptVerdict } from '../../../src/proxy/attempt-verdict.js';
import { ProxyError } from '../../../src/proxy/errors.js';
import type { ForwardOutcome } from '../../../src/proxy/forward.js';

const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const o = (phase: ForwardOutcome['phase'], status: number, extra: Partial<ForwardOutcome> = {}): ForwardOutcome => ({ phase, status, bytesOut: 0, clientStalled: false, ...extra });

describe('attemptVerdict: what an attempt says about its node', () => {
  it('says nothing of what the client did', () => {
    assert.equal(attemptVerdict(o('client-gone', 200), 'v2', false), undefined);
    assert.equal(attemptVerdict(o('unsendable', 0), 'v2', false), undefined);
    // The node gave up on a client that stopped sending or reading (nginx's client_body_timeout, send_timeout).
    assert.equal(attemptVerdict(o('no-response', 0, { error: reset, clientStalled: true }), 'upload', false), undefined);
    assert.equal(attemptVerdict(o('cut', 200, { error: reset, clientStalled: true }), 'v2', false), undefined);
    // A cut answer the client chose: a ranged read, or a 4xx.
    assert.equal(attemptVerdict(o('cut', 206, { error: reset }), 'v2', true), undefined);
    assert.equal(attemptVerdict(o('cut', 416, { error: reset }), 'v2', false), undefined);
  });

  it("says nothing of harbor-lb's own shortage: out of file descriptors, memory or local ports", () => {
    for (const code of ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']) {
      const err = Object.assign(new Error(`connect ${code}`), { code });
      assert.equal(attemptVerdict(o('not-sent', 0, { error: err }), 'v2', false), undefined, `${code} before sending`);
      assert.equal(attemptVerdict(o('no-response', 0, { error: err }), 'v2', false), undefined, `${code} after sending`);
      assert.deepEqual([nodeFailure(err).code, nodeFailure(err).status], ['LOCAL_RESOURCES', 503]);
    }
  });

  it('counts an answer, a gateway error, an unreachable node and a failure', () => {
    assert.deepEqual(attemptVerdict(o('complete', 404), 'v2', false), { kind: 'answered', route: 'v2' });
    assert.deepEqual(attemptVerdict(o('buffered', 200), 'token', false), { kind: 'answered', route: 'token' });
    assert.deepEqual(attemptVerdict(o('complete', 503), 'v2', false), { kind: 'gateway', status: 503, route: 'v2' });
    assert.deepEqual(attemptVerdict(o('gateway-error', 502), 'v2-base', false), { kind: 'gateway', status: 502, route: 'v2-base' });
    assert.equal(attemptVerdict(o('not-sent', 0, { error: refused }), 'v2', false)?.kind, 'unreachable');
    assert.equal(attemptVerdict(o('no-response', 0, { error: reset }), 'v2', false)?.kind, 'failed');
    assert.equal(attemptVerdict(o('cut', 200, { error: reset }), 'v2', false)?.kind, 'failed');
    assert.equal(attemptVerdict(o('no-response', 0, { error: new ProxyError('NODE_TAKEN_OUT', 502, 'the node was taken out') }), 'v2', false)?.kind, 'failed');
  });
});
