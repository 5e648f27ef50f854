// The checker on watch results (linearizability-watch.ts): hand-written histories whose verdict is
// known. A watch event is a read of its key, over [write invoked, event delivered]; index checks
// catch gaps, order and disagreement.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HistoryBuilder } from './history-builder.ts';
import { checkWatchIndexes, checkWithWatches, watchReads, type WatchEventRecord, type WatchLog } from './linearizability-watch.ts';

const put = (key: string, value: string, index: number, at: number, term = 2): WatchEventRecord => ({ key, index, term, op: 'put', value, at });
const del = (key: string, index: number, at: number, term = 2): WatchEventRecord => ({ key, index, term, op: 'del', value: null, at });
const log = (events: WatchEventRecord[], upTo: number, watcher = 'w1', after = 0, prefix = ''): WatchLog => ({ watcher, prefix, after, upTo, events });

function verdict(h: HistoryBuilder, logs: WatchLog[]): { linearizable: boolean; anomalies: string[] } {
  const { verdicts, anomalies } = checkWithWatches(h.ops, logs);
  return { linearizable: [...verdicts.values()].every((v) => v.verdict === 'ok'), anomalies: anomalies.map((a) => `${a.kind}: ${a.summary}`) };
}

/** k: a at 2 [0,10], b at 3 [20,30]; a lost put c seen later as index 4; a delete at 5 [90,100]. */
function history(): HistoryBuilder {
  const h = new HistoryBuilder('k');
  h.put('a', 0, 10, 2);
  h.put('b', 20, 30, 3);
  h.put('c', 40, 50, 'unknown');
  h.del(90, 100, { deleted: true, index: 5 });
  h.get(110, 120, null);
  return h;
}

describe('watch results: linearizable histories', () => {
  it('every change delivered in order, some before their write was answered', () => {
    const h = history();
    const result = verdict(h, [log([put('k', 'a', 2, 5), put('k', 'b', 3, 31), put('k', 'c', 4, 60), del('k', 5, 95)], 5)]);
    assert.deepEqual(result, { linearizable: true, anomalies: [] });
  });

  it('late deliveries (a slow watcher) show past states, which is fine; two watchers agree', () => {
    const h = history();
    const slow = log([put('k', 'a', 2, 1000), put('k', 'b', 3, 1001), put('k', 'c', 4, 1002), del('k', 5, 1003)], 5, 'slow');
    const fast = log([put('k', 'b', 3, 25), put('k', 'c', 4, 55)], 4, 'fast', 2);
    assert.deepEqual(verdict(h, [slow, fast]), { linearizable: true, anomalies: [] });
  });

  it('a watcher that covered only part of the log is not asked for the rest', () => {
    const h = history();
    assert.deepEqual(verdict(h, [log([put('k', 'b', 3, 40)], 3, 'w', 2)]), { linearizable: true, anomalies: [] });
  });

  it('a write with a lost answer that the watch saw must have happened, and a later read agrees', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.put('lost', 20, 30, 'unknown');
    h.get(100, 110, ['lost', 3]);
    assert.deepEqual(verdict(h, [log([put('k', 'a', 2, 8), put('k', 'lost', 3, 40)], 3)]), { linearizable: true, anomalies: [] });
  });
});

describe('watch results: histories that must be refused', () => {
  it('a value nobody wrote', () => {
    const result = verdict(history(), [log([put('k', 'a', 2, 5), put('k', 'zzz', 3, 31)], 3)]);
    assert.equal(result.linearizable, false);
    assert.ok(result.anomalies.some((a) => a.startsWith('watch-phantom')), result.anomalies.join('\n'));
  });

  it('a value at the index of another write', () => {
    const result = verdict(history(), [log([put('k', 'a', 3, 35)], 3, 'w', 2)]);
    assert.equal(result.linearizable, false, 'the register never held a with modIndex 3');
    assert.ok(result.anomalies.some((a) => a.startsWith('watch-disagree')), result.anomalies.join('\n'));
  });

  it('an event delivered before its write was invoked', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.put('b', 50, 60, 3);
    const result = verdict(h, [log([put('k', 'a', 2, 5), put('k', 'b', 3, 20)], 3)]);
    assert.equal(result.linearizable, false);
    assert.ok(result.anomalies.some((a) => a.startsWith('watch-early')), result.anomalies.join('\n'));
  });

  it('an event of a write that was answered as certainly not done', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.put('never', 20, 30, 'failed');
    h.get(40, 50, ['a', 2]);
    const result = verdict(h, [log([put('k', 'a', 2, 5), put('k', 'never', 3, 35)], 3)]);
    assert.equal(result.linearizable, false);
    assert.ok(result.anomalies.some((a) => a.startsWith('watch-phantom')), result.anomalies.join('\n'));
  });

  it('a gap: an acknowledged change inside what the watcher covered is missing', () => {
    const result = verdict(history(), [log([put('k', 'a', 2, 5), put('k', 'c', 4, 60)], 4)]);
    assert.equal(result.linearizable, true, 'each event on its own is a fine read');
    assert.deepEqual(result.anomalies.map((a) => a.split(':')[0]), ['watch-gap']);
    assert.match(result.anomalies[0], /missed the acknowledged put "b" of "k" at index 3/);
  });

  it('a gap at a change whose answer was lost: another watcher saw it', () => {
    // c (index 4) was never acknowledged; w2 saw it, w1 covered index 4 without it.
    const w1 = log([put('k', 'a', 2, 5), put('k', 'b', 3, 31), del('k', 5, 95)], 5, 'w1');
    const w2 = log([put('k', 'c', 4, 60)], 4, 'w2', 3);
    const anomalies = checkWatchIndexes([w1, w2], history().ops);
    assert.deepEqual(anomalies.map((a) => a.kind), ['watch-gap']);
    assert.match(anomalies[0].summary, /^w1 .* missed put "k"="c" at index 4 .*, which w2 saw$/);
    // Not held against a watcher that did not cover it, or watches another prefix.
    assert.deepEqual(checkWatchIndexes([log([put('k', 'a', 2, 5), put('k', 'b', 3, 31)], 3, 'w1'), w2], history().ops), []);
    assert.deepEqual(checkWatchIndexes([log([], 5, 'w1', 0, 'other/'), w2], history().ops), []);
  });

  it('events out of order, or one twice', () => {
    const swapped = checkWatchIndexes([log([put('k', 'b', 3, 31), put('k', 'a', 2, 32)], 3)], history().ops);
    assert.ok(swapped.some((a) => a.kind === 'watch-order'), JSON.stringify(swapped));
    const twice = checkWatchIndexes([log([put('k', 'a', 2, 5), put('k', 'a', 2, 6), put('k', 'b', 3, 31)], 3)], history().ops);
    assert.ok(twice.some((a) => a.kind === 'watch-order'), JSON.stringify(twice));
  });

  it('two watchers that disagree on an index, or an event outside the prefix', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 'unknown');
    h.put('b', 0, 10, 'unknown');
    const anomalies = checkWatchIndexes([log([put('k', 'a', 2, 20)], 2, 'w1'), log([put('k', 'b', 2, 20)], 2, 'w2')], h.ops);
    assert.deepEqual(anomalies.map((a) => a.kind), ['watch-disagree']);
    const outside = checkWatchIndexes([log([put('k', 'a', 2, 20)], 2, 'w1', 0, 'other/')], h.ops);
    assert.deepEqual(outside.map((a) => a.kind), ['watch-order']);
  });

  it('a delete the register could not have seen then', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.get(30, 40, ['a', 2]);
    h.del(50, 60, { deleted: true, index: 3 });
    // The watch claims the key was absent before a was ever read back, delivered before the delete began.
    const result = verdict(h, [log([put('k', 'a', 2, 5), del('k', 3, 20)], 3)]);
    assert.equal(result.linearizable, false);
  });

  it('a delete event that no delete of the key can explain', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.del(50, 60, 412, 2);
    const result = verdict(h, [log([put('k', 'a', 2, 5), del('k', 3, 70)], 3)]);
    assert.ok(result.anomalies.some((a) => a.startsWith('watch-phantom')), result.anomalies.join('\n'));
  });
});

describe('watch results: which events the search needs', () => {
  it('skips events an answered write explains; keeps lost-answer writes, early deliveries and the unexplained', () => {
    const h = history(); // a at 2 [0,10], b at 3 [20,30], lost c, delete at 5 [90,100]
    const events = [put('k', 'a', 2, 15), put('k', 'b', 3, 25), put('k', 'c', 4, 60), del('k', 5, 100), put('k', 'zzz', 6, 130)];
    const kept = watchReads([log(events, 6)], h.ops).map((r) => (r.output?.kind === 'found' ? `${r.output.value}@${r.call}-${r.ret}` : `absent@${r.call}-${r.ret}`));
    // a and the delete were delivered at or after their answers; b before its answer (25 < 30).
    assert.deepEqual(kept, ['b@20-25', 'c@40-60', 'zzz@130-130']);
  });

  it('a lost-answer delete starts at the earliest delete of its key that could have made it', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 2);
    h.del(40, 50, 'unknown');
    h.del(45, 55, 'unknown');
    const [read] = watchReads([log([del('k', 3, 70)], 3, 'w', 2)], h.ops);
    assert.equal(read.call, 40);
    assert.equal(read.ret, 70);
  });
});
