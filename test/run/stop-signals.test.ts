// The stop-signal latch of `raftlet run` (src/run/stop-signals.ts), on an EventEmitter standing in
// for `process`: a signal before the node runs is kept, the first one only is caught, and after
// it (or after close) no listener is left, so a signal has Node's default effect again.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { StopSignals, type StopSignal } from '../../src/run/stop-signals.ts';

/** A latch on a stand-in for `process`, and what its handler saw once `handle` is called. */
function latch(): { source: EventEmitter; signals: StopSignals; seen: StopSignal[]; handle: () => void; listeners: () => number } {
  const source = new EventEmitter();
  const signals = new StopSignals(source);
  const seen: StopSignal[] = [];
  return {
    source,
    signals,
    seen,
    handle: () => signals.onStop((s) => seen.push(s)),
    listeners: () => source.listenerCount('SIGTERM') + source.listenerCount('SIGINT'),
  };
}

test('a signal that comes before the handler is kept and handed over at once', () => {
  const { source, signals, seen, handle, listeners } = latch();
  signals.listen();
  assert.equal(listeners(), 2);
  source.emit('SIGTERM', 'SIGTERM');
  assert.equal(signals.received, 'SIGTERM');
  assert.equal(listeners(), 0, 'a second signal finds the default');
  handle();
  assert.deepEqual(seen, ['SIGTERM']);
});

test('a handler set first gets the first signal only', () => {
  const { source, signals, seen, handle, listeners } = latch();
  signals.listen();
  signals.listen();
  assert.equal(listeners(), 2, 'listening twice adds nothing');
  handle();
  assert.deepEqual(seen, []);
  source.emit('SIGINT', 'SIGINT');
  source.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(seen, ['SIGINT']);
  assert.equal(signals.received, 'SIGINT');
});

test("a signal caught before the module was loaded (the bin's first catch) counts as the first", () => {
  const { signals, seen, handle, listeners } = latch();
  signals.listen('SIGTERM');
  assert.equal(signals.received, 'SIGTERM');
  assert.equal(listeners(), 0, 'nothing more is caught');
  handle();
  assert.deepEqual(seen, ['SIGTERM']);
});

test('close removes the listeners and the handler', () => {
  const { source, signals, seen, handle, listeners } = latch();
  signals.listen();
  handle();
  signals.close();
  assert.equal(listeners(), 0);
  source.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(seen, []);
  assert.equal(signals.received, null);
});
