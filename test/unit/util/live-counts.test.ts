import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LiveCounts } from '../../../src/util/live-counts.js';

it('counts up and down per key; a key with none reads 0, and one less of it is nothing', () => {
  const c = new LiveCounts();
  assert.equal(c.get('a'), 0);
  c.remove('a');
  assert.equal(c.get('a'), 0);
  assert.equal(c.add('a'), 1);
  assert.equal(c.add('a'), 2);
  assert.equal(c.add('b'), 1);
  c.remove('a');
  assert.equal(c.get('a'), 1);
  c.remove('a');
  c.remove('a');
  assert.equal(c.get('a'), 0);
  assert.equal(c.get('b'), 1);
  assert.equal(c.add('a'), 1, 'a key back from zero starts again at one');
});

it('keeps at most one key at zero: entries never outgrow the keys above zero by more than one', () => {
  const c = new LiveCounts();
  for (let i = 0; i < 1000; i++) {
    c.add(`k${i}`);
    c.add(`k${i}`);
    c.remove(`k${i}`);
    c.remove(`k${i}`);
    assert.ok(c.size <= 1, `size ${c.size} after key ${i}`);
  }
  c.add('x');
  c.add('y');
  assert.equal(c.size, 3);
  c.remove('x');
  c.remove('y');
  assert.equal(c.size, 1);
  assert.equal(c.get('x'), 0);
  assert.equal(c.get('y'), 0);
  assert.equal(c.get('k999'), 0);
});
