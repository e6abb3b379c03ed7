import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideNext, type Next, type NextFacts } from '../../../src/proxy/decide-next.js';

/** A body-less GET that failed with another node and budget left: the baseline each row changes. */
const base: NextFacts = { phase: 'no-response', nodeTakenOut: false, method: 'GET', body: 'none', anotherNode: true, budgetAllows: true };
const done: Next = { kind: 'done' };
const again = (reason: 'retried' | 'failover' | 'reissued'): Next => ({ kind: 'again', reason });

const rows: Array<[string, Partial<NextFacts>, Next]> = [
  // Nothing reached the node: any method goes elsewhere while its body can be sent again.
  ['refused connection, GET', { phase: 'not-sent' }, again('failover')],
  ['refused connection, PUT with a body read whole', { phase: 'not-sent', method: 'PUT', body: 'buffered' }, again('failover')],
  ['refused connection, PATCH with an untouched streamed body', { phase: 'not-sent', method: 'PATCH', body: { touched: false } }, again('failover')],
  ['refused connection, PATCH whose body the node began to read', { phase: 'not-sent', method: 'PATCH', body: { touched: true } }, done],
  ['refused connection, budget spent: failover puts no load on a node', { phase: 'not-sent', budgetAllows: false }, again('failover')],
  ['refused connection, no other node', { phase: 'not-sent', anotherNode: false }, done],
  // harbor-lb itself out of descriptors: no other node fares better, and a pinned upload's would not know it.
  ['out of file descriptors before sending', { phase: 'not-sent', localShortage: true }, done],
  ['out of file descriptors, a GET', { localShortage: true }, done],
  // Body-less reads that got no answer, or a 502/503/504 dropped for a retry.
  ['no answer to a GET', {}, again('retried')],
  ['no answer to a HEAD', { method: 'HEAD' }, again('retried')],
  ['no answer to a GET, budget spent', { budgetAllows: false }, done],
  ['no answer to a GET because its node was taken out: outside the budget', { budgetAllows: false, nodeTakenOut: true }, again('retried')],
  ['a dropped 503 to a GET, budget spent since: it was allowed when dropped', { phase: 'gateway-error', budgetAllows: false }, again('retried')],
  ['no answer to a POST: it may have acted', { method: 'POST', body: 'buffered' }, done],
  ['no answer to a GET that carries a body', { body: 'buffered' }, done],
  ['no answer to a DELETE without a body', { method: 'DELETE' }, done],
  ['no answer to a partly sent upload', { method: 'PATCH', body: { touched: true } }, done],
  ['no answer to a GET, no other node', { anotherNode: false }, done],
  // Answers that reached the client, or ended on the client's side.
  ['complete', { phase: 'complete' }, done],
  ['cut after the head went out', { phase: 'cut' }, done],
  ['client gone', { phase: 'client-gone' }, done],
  ['unsendable as the client shaped it', { phase: 'unsendable' }, done],
  // Token rules.
  ['a bad token held back, another node', { phase: 'buffered', token: 'bad' }, again('reissued')],
  ['a bad token held back, no other node', { phase: 'buffered', token: 'bad', anotherNode: false }, done],
  ['a good token', { phase: 'buffered', token: 'good' }, done],
  ['an answer that is not a token', { phase: 'buffered', token: 'not-a-token' }, done],
  ['a token that could not be verified', { phase: 'buffered', token: 'not-verified' }, done],
  ['a refusal of a token that verifies, another node', { phase: 'held-back', refusedTokenVerifies: true }, again('retried')],
  ['a refusal of a token that verifies, budget spent: a refusal is no failure', { phase: 'held-back', refusedTokenVerifies: true, budgetAllows: false }, again('retried')],
  ['a refusal of a token that verifies, no other node', { phase: 'held-back', refusedTokenVerifies: true, anotherNode: false }, done],
  ['a refusal of a token that does not verify: the client is at fault', { phase: 'held-back', refusedTokenVerifies: false }, done],
];

describe('decideNext: whether a request goes to another node', () => {
  for (const [name, change, expected] of rows) {
    it(name, () => assert.deepEqual(decideNext({ ...base, ...change }), expected));
  }
});
