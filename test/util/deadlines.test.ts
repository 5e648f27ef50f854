// Many call deadlines under one timer: each expired item fires once, deleted ones never, late
// additions with earlier deadlines are honoured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Deadlines, type DeadlineTimer } from '../../src/util/deadlines.ts';
import { waitFor } from '../transport/helpers.ts';

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

/** A hand-driven DeadlineTimer: time moves only when the test says, and it counts armed timers. */
function manualTimer(): { timer: DeadlineTimer; advance(ms: number): void; armed(): number } {
  let now = 0;
  const pending = new Set<{ at: number; fn: () => void }>();
  return {
    timer: {
      now: () => now,
      after(ms, fn) {
        const entry = { at: now + ms, fn };
        pending.add(entry);
        return () => pending.delete(entry);
      },
    },
    advance(ms) {
      now += ms;
      for (const entry of [...pending].sort((a, b) => a.at - b.at)) {
        if (entry.at > now || !pending.has(entry)) continue;
        pending.delete(entry);
        entry.fn();
      }
    },
    armed: () => pending.size,
  };
}

test('on an injected clock: one timer however many deadlines, armed for the earliest, re-armed for the next after each sweep', () => {
  const clock = manualTimer();
  const fired: number[] = [];
  const deadlines = new Deadlines<number>((item) => fired.push(item), clock.timer);
  for (let i = 100; i >= 1; i--) deadlines.add(i, i * 10);
  assert.equal(clock.armed(), 1, 'one timer for 100 deadlines');
  clock.advance(9);
  assert.deepEqual(fired, [], 'nothing before the earliest deadline');
  clock.advance(16);
  assert.deepEqual(fired, [1, 2], 'the sweep takes everything expired by then, earliest first');
  assert.equal(clock.armed(), 1);
  deadlines.delete(3);
  clock.advance(15);
  assert.deepEqual(fired, [1, 2, 4], 'a deleted item never fires');
  for (let i = 5; i <= 100; i++) deadlines.delete(i);
  assert.equal(clock.armed(), 0, 'no timer is left once nothing waits');
  assert.equal(deadlines.size, 0);
});
