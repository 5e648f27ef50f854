// The stop-signal latch of `raftlet run` (src/run/stop-signals.ts), on an EventEmitter standing in
// for `process`: a signal before the node runs is kept, the first one only is caught, and after
// it (or after close) no listener is left, so a signal has Node's default effect again.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { StopSignals, type StopSignal } from '../../src/run/stop-signals.ts';

const listeners = (e: EventEmitter): number => e.listenerCount('SIGTERM') + e.listenerCount('SIGINT');

test('a signal that comes before the handler is kept and handed over at once', () => {
  const source = new EventEmitter();
  const signals = new StopSignals(source);
  signals.listen();
  assert.equal(listeners(source), 2);
  source.emit('SIGTERM', 'SIGTERM');
  assert.equal(signals.received, 'SIGTERM');
  assert.equal(listeners(source), 0, 'a second signal finds the default');
  const seen: StopSignal[] = [];
  signals.onStop((s) => seen.push(s));
  assert.deepEqual(seen, ['SIGTERM']);
});

test('a handler set first gets the first signal only', () => {
  const source = new EventEmitter();
  const signals = new StopSignals(source);
  const seen: StopSignal[] = [];
  signals.listen();
  signals.listen();
  assert.equal(listeners(source), 2, 'listening twice adds nothing');
  signals.onStop((s) => seen.push(s));
  assert.deepEqual(seen, []);
  source.emit('SIGINT', 'SIGINT');
  source.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(seen, ['SIGINT']);
  assert.equal(signals.received, 'SIGINT');
});

test("a signal caught before the module was loaded (the bin's first catch) counts as the first", () => {
  const source = new EventEmitter();
  const signals = new StopSignals(source);
  signals.listen('SIGTERM');
  assert.equal(signals.received, 'SIGTERM');
  assert.equal(listeners(source), 0, 'nothing more is caught');
  const seen: StopSignal[] = [];
  signals.onStop((s) => seen.push(s));
  assert.deepEqual(seen, ['SIGTERM']);
});

test('close removes the listeners and the handler', () => {
  const source = new EventEmitter();
  const signals = new StopSignals(source);
  const seen: StopSignal[] = [];
  signals.listen();
  signals.onStop((s) => seen.push(s));
  signals.close();
  assert.equal(listeners(source), 0);
  source.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(seen, []);
  assert.equal(signals.received, null);
});
