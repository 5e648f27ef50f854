// The change history behind watches: bounded by count and bytes, with a floor that says from where
// on nothing is missing; a snapshot install wipes it; listeners hear each change in apply order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChangeHistory } from '../../src/kv/history.ts';
import type { KvChange } from '../../src/kv/types.ts';

const change = (index: number, key = `k${index}`, value: Uint8Array | null = new Uint8Array([index & 0xff])): KvChange => ({
  index,
  term: 1,
  key,
  op: value === null ? 'del' : 'put',
  value,
});

test('keeps the newest maxChanges changes; the floor is the newest index dropped', () => {
  const history = new ChangeHistory({ maxChanges: 3, maxBytes: 1 << 20 });
  assert.equal(history.floor, 0);
  for (const index of [2, 3, 5, 8, 9]) history.record(change(index));
  assert.equal(history.size, 3);
  assert.equal(history.floor, 3, 'changes at 2 and 3 are gone');
  assert.deepEqual(history.since(3, '', 10).map((c) => c.index), [5, 8, 9]);
  assert.deepEqual(history.since(5, '', 10).map((c) => c.index), [8, 9]);
  assert.deepEqual(history.since(6, '', 1).map((c) => c.index), [8], 'at most max');
  assert.deepEqual(history.since(9, '', 10), []);
  assert.equal(history.appliedIndex, 9);
  history.advanceTo(12);
  assert.equal(history.appliedIndex, 12);
});

test('is bounded by bytes too: one large value pushes older changes out', () => {
  const history = new ChangeHistory({ maxChanges: 100, maxBytes: 1000 });
  for (let index = 1; index <= 5; index++) history.record(change(index));
  history.record(change(6, 'big', new Uint8Array(800)));
  assert.ok(history.floor >= 1);
  assert.equal(history.since(history.floor, '', 100).at(-1)?.index, 6);
  history.record(change(7, 'bigger', new Uint8Array(5000)));
  assert.equal(history.size, 0, 'a change larger than the bound is not kept either');
  assert.equal(history.floor, 7);
});

test('filters by prefix and tells listeners of each change and of a reset', () => {
  const history = new ChangeHistory({ maxChanges: 10, maxBytes: 1 << 20 });
  const heard: (number | null)[] = [];
  const unsubscribe = history.subscribe((c) => heard.push(c === null ? null : c.index));
  history.record(change(1, 'app/a'));
  history.record(change(2, 'other'));
  history.record(change(3, 'app/b', null));
  assert.deepEqual(history.since(0, 'app/', 10).map((c) => [c.key, c.op]), [['app/a', 'put'], ['app/b', 'del']]);
  history.reset(40);
  assert.equal(history.floor, 40);
  assert.equal(history.appliedIndex, 40);
  assert.deepEqual(history.since(0, '', 10), []);
  unsubscribe();
  history.record(change(41));
  assert.deepEqual(heard, [1, 2, 3, null]);
});

test('since() equals a filter over every change kept, for any bounds and cut', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 80 }), fc.nat({ max: 200 }), (maxChanges, gaps, cut) => {
      const history = new ChangeHistory({ maxChanges, maxBytes: 1 << 20 });
      const all: KvChange[] = [];
      let index = 0;
      for (const gap of gaps) {
        index += gap;
        const c = change(index, index % 2 === 0 ? `a/${index}` : `b/${index}`);
        all.push(c);
        history.record(c);
      }
      const kept = all.slice(-maxChanges);
      assert.equal(history.floor, all.length > maxChanges ? all[all.length - maxChanges - 1].index : 0);
      const after = Math.max(cut, history.floor);
      assert.deepEqual(history.since(after, 'a/', 1000), kept.filter((c) => c.index > after && c.key.startsWith('a/')));
    }),
    { numRuns: 300 },
  );
});
