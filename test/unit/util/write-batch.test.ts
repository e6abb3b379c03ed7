import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWriteBatch } from '../../../src/util/write-batch.js';

const turnEnd = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('WriteBatch: writes made together at the end of the turn', () => {
  it('holds writes from several callbacks of one turn, then makes them in order once the turn ends', async () => {
    const made: string[] = [];
    const batch = createWriteBatch({ max: 64, onError: (err) => assert.fail(err as Error) });
    // Two I/O callbacks of one poll, as two requests read in one turn.
    await new Promise<void>((resolve) => {
      let pending = 2;
      for (const name of ['a', 'b']) {
        process.nextTick(() => {
          batch.later(() => made.push(name));
          assert.deepEqual(made, [], `${name} was made before the turn ended`);
          if (--pending === 0) resolve();
        });
      }
    });
    assert.deepEqual([...made], []);
    await turnEnd();
    assert.deepEqual(made, ['a', 'b']);
    // The next turn's writes wait for their own turn's end.
    batch.later(() => made.push('c'));
    assert.deepEqual(made, ['a', 'b']);
    await turnEnd();
    assert.deepEqual(made, ['a', 'b', 'c']);
  });

  it('makes them at once when `max` are waiting: no write waits behind more than that', async () => {
    const made: number[] = [];
    const batch = createWriteBatch({ max: 3, onError: (err) => assert.fail(err as Error) });
    batch.later(() => made.push(1));
    batch.later(() => made.push(2));
    assert.deepEqual([...made], []);
    batch.later(() => made.push(3));
    assert.deepEqual(made, [1, 2, 3]);
    batch.later(() => made.push(4));
    assert.deepEqual(made, [1, 2, 3]);
    await turnEnd();
    assert.deepEqual(made, [1, 2, 3, 4]);
  });

  it('a write that throws is reported; the writes after it are still made', async () => {
    const made: string[] = [];
    const errors: unknown[] = [];
    const batch = createWriteBatch({ max: 64, onError: (err) => errors.push(err) });
    batch.later(() => made.push('before'));
    batch.later(() => {
      throw new Error('boom');
    });
    batch.later(() => made.push('after'));
    await turnEnd();
    assert.deepEqual(made, ['before', 'after']);
    assert.deepEqual(errors.map((e) => (e as Error).message), ['boom']);
  });

  it('flush makes every waiting write now, and each only once', async () => {
    const made: string[] = [];
    const batch = createWriteBatch({ max: 64, onError: (err) => assert.fail(err as Error) });
    batch.later(() => made.push('a'));
    batch.flush();
    assert.deepEqual(made, ['a']);
    await turnEnd();
    assert.deepEqual(made, ['a']);
  });
});
