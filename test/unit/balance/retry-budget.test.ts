import assert from 'node:assert/strict';
import { it } from 'node:test';
import { RetryBudget } from '../../../src/balance/retry-budget.js';

it('allows retries up to a share of requests in flight, never below the floor', () => {
  const b = new RetryBudget(0.2, 3);
  b.active = 5;
  b.retrying = 2;
  assert.equal(b.canRetry(), true, 'floor of 3 applies at low load');
  b.retrying = 3;
  assert.equal(b.canRetry(), false);
  b.active = 100;
  b.retrying = 19;
  assert.equal(b.canRetry(), true);
  b.retrying = 20;
  assert.equal(b.canRetry(), false, '20% of 100 in flight');
});
