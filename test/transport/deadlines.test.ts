// Many call deadlines under one timer: each expired item fires once, deleted ones never, late
// additions with earlier deadlines are honoured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Deadlines } from '../../src/transport/deadlines.ts';
import { waitFor } from './helpers.ts';

test('items fire once their deadline passed, in any order of adding; deleted items never fire', async () => {
  const fired: string[] = [];
  const deadlines = new Deadlines<string>((item) => fired.push(item));
  const now = performance.now();
  deadlines.add('late', now + 60);
  deadlines.add('early', now + 20);
  deadlines.add('gone', now + 10);
  deadlines.delete('gone');
  await waitFor(() => fired.length === 2, 'both deadlines');
  assert.deepEqual(fired, ['early', 'late']);
  assert.equal(deadlines.size, 0);
});

test('an item added by an expiry callback, and one added earlier than the armed deadline, both fire', async () => {
  const fired: string[] = [];
  const deadlines: Deadlines<string> = new Deadlines<string>((item) => {
    fired.push(item);
    if (item === 'first') deadlines.add('chained', performance.now() + 5);
  });
  deadlines.add('far', performance.now() + 5000);
  deadlines.add('first', performance.now() + 10);
  await waitFor(() => fired.includes('chained'), 'the chained deadline');
  assert.deepEqual(fired, ['first', 'chained']);
  assert.equal(deadlines.size, 1, 'far is still waiting');
  deadlines.clear();
  assert.equal(deadlines.size, 0);
});
