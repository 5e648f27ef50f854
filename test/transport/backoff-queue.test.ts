import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff } from '../../src/transport/backoff.ts';
import { SendQueue } from '../../src/transport/send-queue.ts';

describe('backoff', () => {
  test('doubles per failure up to the cap, jittered within [half, all] of it', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const lows = Array.from({ length: 6 }, () => low.fail(0));
    const highs = Array.from({ length: 6 }, () => Math.round(high.fail(0)));
    assert.deepEqual(lows, [50, 100, 200, 400, 500, 500]);
    assert.deepEqual(highs, [100, 200, 400, 800, 1000, 1000]);
  });

  test('backs off until the delay has passed, and a success resets it', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.5 });
    assert.equal(backoff.isBackingOff(0), false);
    const delay = backoff.fail(1000);
    assert.equal(delay, 75);
    assert.equal(backoff.isBackingOff(1074), true);
    assert.equal(backoff.isBackingOff(1075), false);
    backoff.fail(2000);
    assert.equal(backoff.consecutiveFailures, 2);
    backoff.succeed();
    assert.equal(backoff.consecutiveFailures, 0);
    assert.equal(backoff.isBackingOff(2001), false);
    assert.equal(backoff.fail(3000), 75);
  });

  test('refuses nonsense settings', () => {
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10, random: Math.random }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 100, maxMs: 10, random: Math.random }), /0 < initialMs <= maxMs/);
  });
});

describe('send queue', () => {
  const msg = (byte: number, size = 10): Uint8Array => new Uint8Array(size).fill(byte);

  test('keeps order and drops the oldest beyond the message bound', () => {
    const queue = new SendQueue(3, 1000);
    assert.deepEqual([1, 2, 3, 4, 5].map((i) => queue.push(msg(i))), [0, 0, 0, 1, 1]);
    assert.equal(queue.length, 3);
    assert.deepEqual(queue.takeBatch(10, 1000).map((m) => m[0]), [3, 4, 5]);
    assert.equal(queue.length, 0);
    assert.equal(queue.bytes, 0);
  });

  test('drops the oldest beyond the byte bound, but always keeps the newest message', () => {
    const queue = new SendQueue(100, 25);
    queue.push(msg(1));
    queue.push(msg(2));
    assert.equal(queue.push(msg(3)), 1);
    assert.equal(queue.bytes, 20);
    assert.equal(queue.push(msg(4, 100)), 2, 'an oversized message replaces everything');
    assert.equal(queue.length, 1);
    assert.deepEqual(queue.takeBatch(10, 25).map((m) => m[0]), [4]);
  });

  test('batches stop at the message and byte limits, taking at least one', () => {
    const queue = new SendQueue(100, 10_000);
    for (let i = 0; i < 10; i++) queue.push(msg(i));
    assert.deepEqual(queue.takeBatch(4, 1000).map((m) => m[0]), [0, 1, 2, 3]);
    assert.deepEqual(queue.takeBatch(100, 25).map((m) => m[0]), [4, 5]);
    assert.deepEqual(queue.takeBatch(100, 1).map((m) => m[0]), [6]);
    assert.equal(queue.clear(), 3);
    assert.deepEqual(queue.takeBatch(10, 10), []);
  });

  test('stays correct across many pushes and takes (compaction)', () => {
    const queue = new SendQueue(5000, 1_000_000);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) queue.push(msg(next++ % 256, 1));
      for (const m of queue.takeBatch(250, 1_000_000)) {
        assert.equal(m[0], expected++ % 256);
      }
    }
    assert.equal(queue.length, 50 * 300 - 50 * 250);
  });
});
