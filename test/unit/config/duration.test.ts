import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseDuration } from '../../../src/config/duration.js';

it('parses durations and refuses anything else', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('5s'), 5000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  for (const bad of ['', '5', 's', '5 s', '-5s', '5sec', '1m 30s', '5s!']) assert.equal(parseDuration(bad), undefined, bad);
});
